"""Licence and copyright detection (scanner/licenses.py). Every text here is written for the test."""

from __future__ import annotations

import pytest

from scanner.licenses import (
    REPO_LICENSE_FILE_RE,
    Copyright,
    LicenseInfo,
    LicenseMatch,
    analyse,
    detect_licenses,
    find_copyrights,
    holders_match,
)

APACHE_HEADER = """\
# coding=utf-8
# Copyright 2024 The Nimbus team, Acme Group and the Example Inc. team. All rights reserved.
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.
import torch
"""


def spdx_ids(text: str) -> list[str]:
    return [m.spdx for m in detect_licenses(text)]


# ---------------------------------------------------------------- licences by wording

def test_apache_header_with_line_evidence_and_copyright():
    info = analyse(APACHE_HEADER)
    assert info.licenses == [LicenseMatch("Apache-2.0", 4, "header",
                                          'Licensed under the Apache License, Version 2.0 (the "License");')]
    assert info.copyrights == [Copyright(
        2, "Copyright 2024 The Nimbus team, Acme Group and the Example Inc. team. All rights reserved.",
        "2024", "The Nimbus team, Acme Group and the Example Inc. team")]
    assert info.spdx == "Apache-2.0"


LICENSED_TEXTS = {
    "MIT": """\
// Copyright (c) 2024 Example Labs
//
// Permission is hereby granted, free of charge, to any person obtaining a copy
// of this software and associated files, to deal in the Software without restriction.
// The above copyright notice and this permission notice shall be included in all
// copies or substantial portions of the Software.
""",
    "BSD-3-Clause": """\
/*
 * Copyright (c) 2021, Example Org
 * Redistribution and use in source and binary forms, with or without
 * modification, are permitted provided that the following conditions are met:
 * 1. Redistributions of source code must retain the above copyright notice.
 * 2. Redistributions in binary form must reproduce the above copyright notice.
 * 3. Neither the name of the copyright holder nor the names of its contributors
 *    may be used to endorse or promote products derived from this software.
 */
""",
    "BSD-2-Clause": """\
# Redistribution and use in source and binary forms, with or without
# modification, are permitted provided that the following conditions are met:
# 1. Redistributions of source code must retain the above copyright notice.
# 2. Redistributions in binary form must reproduce the above copyright notice.
""",
    "GPL-2.0-or-later": """\
# This program is free software; you can redistribute it and/or modify
# it under the terms of the GNU General Public License as published by
# the Free Software Foundation; either version 2 of the License, or
# (at your option) any later version.
""",
    "GPL-2.0-only": """\
# This program is free software; you can redistribute it and/or modify
# it under the terms of the GNU General Public License version 2 as
# published by the Free Software Foundation.
""",
    "GPL-3.0-or-later": """\
# This program is free software: you can redistribute it and/or modify
# it under the terms of the GNU General Public License as published by
# the Free Software Foundation, either version 3 of the License, or
# (at your option) any later version.
""",
    "GPL-3.0-only": """\
# This file is free software: you can redistribute it and/or modify it under the terms of the
# GNU General Public License, version 3, as published by the Free Software Foundation.
# You should have received a copy of the GNU General Public License along with it.
""",
    "LGPL-2.1-or-later": """\
# This library is free software; you can redistribute it and/or
# modify it under the terms of the GNU Lesser General Public
# License as published by the Free Software Foundation; either
# version 2.1 of the License, or (at your option) any later version.
""",
    "LGPL-3.0-only": """\
# You can redistribute and/or modify it under the terms of the GNU Lesser General Public License
# version 3 as published by the Free Software Foundation.
# See the GNU Lesser General Public License for more details.
""",
    "AGPL-3.0-or-later": """\
# This program is free software: you can redistribute it and/or modify
# it under the terms of the GNU Affero General Public License as published
# by the Free Software Foundation, either version 3 of the License, or
# (at your option) any later version.
""",
    "MPL-2.0": """\
/* This Source Code Form is subject to the terms of the Mozilla Public
 * License, v. 2.0. If a copy of the MPL was not distributed with this
 * file, You can obtain one at https://mozilla.org/MPL/2.0/. */
""",
    "LicenseRef-Llama-2-Community": """\
Llama 2 is licensed under the LLAMA 2 Community License,
Copyright (c) Meta Platforms, Inc. All Rights Reserved.
""",
    "LicenseRef-Llama-3-Community": """\
META LLAMA 3 COMMUNITY LICENSE AGREEMENT
Meta Llama 3 Version Release Date: April 18, 2024
If you distribute a product that uses it, display "Built with Meta Llama 3".
""",
    "LicenseRef-Llama-3.1-Community": """\
LLAMA 3.1 COMMUNITY LICENSE AGREEMENT
Llama 3.1 Version Release Date: July 23, 2024
Derived products must display "Built with Llama".
""",
    "LicenseRef-Llama-3.2-Community": """\
The weights are covered by the Llama 3.2 Community License Agreement.
Use must follow the Acceptable Use Policy published by Meta.
""",
    "LicenseRef-Llama-3.3-Community": """\
Llama 3.3 is licensed under the Llama 3.3 Community License, Copyright © Meta Platforms, Inc.
""",
    "LicenseRef-Llama-4-Community": """\
LLAMA 4 COMMUNITY LICENSE AGREEMENT
Llama 4 Version Effective Date: April 5, 2025
""",
    "LicenseRef-Tongyi-Qianwen": """\
Tongyi Qianwen LICENSE AGREEMENT
Tongyi Qianwen Release Date: August 3, 2023
"Licensor" here means Alibaba Cloud.
""",
    "LicenseRef-Qwen-Research": """\
Qwen RESEARCH LICENSE AGREEMENT
Release Date: September 19, 2024
You may use the Qwen Materials for non-commercial research only.
""",
    "LicenseRef-DeepSeek-Model": """\
DEEPSEEK LICENSE AGREEMENT
Version 1.0, 23 October 2023
Copyright (c) 2023 DeepSeek
""",
    "LicenseRef-Gemma": """\
Gemma is provided under and subject to the Gemma Terms of Use
found at ai.google.dev/gemma/terms
""",
}


@pytest.mark.parametrize("expected", list(LICENSED_TEXTS))
def test_each_licence_detected_exactly(expected):
    assert spdx_ids(LICENSED_TEXTS[expected]) == [expected]


@pytest.mark.parametrize("text", [
    "# uses the MIT approach",
    "apache",
    "see GPL",
    "# Inspired by the Apache Arrow memory layout",
    "MIT License",
    "# This port keeps the GNU General Public License text in COPYING",
    "# Weights from Meta Llama 3, converted",
    "# Built with Llama",
    "deepseek deepseek deepseek",
    "See the Gemma Terms of Use.",
    "# Tokenizer borrowed from Qwen (Alibaba Cloud)",
])
def test_single_keyword_is_not_a_licence(text):
    assert detect_licenses(text) == []


def test_declaring_sentence_is_enough():
    assert spdx_ids("# This file is licensed under the MIT License.\n") == ["MIT"]


def test_llama_31_text_is_not_also_llama_3():
    assert "LicenseRef-Llama-3-Community" not in spdx_ids(LICENSED_TEXTS["LicenseRef-Llama-3.1-Community"])
    assert "LicenseRef-Llama-3.1-Community" not in spdx_ids(LICENSED_TEXTS["LicenseRef-Llama-3-Community"])


def test_gcc_style_version_wording():
    text = ("# GCC is free software; you can redistribute it and/or modify it under\n"
            "# the terms of the GNU General Public License as published by the Free\n"
            "# Software Foundation; either version 3, or (at your option) any later version.\n")
    assert spdx_ids(text) == ["GPL-3.0-or-later"]


def test_lgpl_21_is_not_version_2():
    # "version 2.1" must not satisfy a "version 2" marker (LGPL-2.0 uses the Library name, 2.1 may too)
    text = ("modify it under the terms of the GNU Library General Public License as published by the FSF; "
            "either version 2.1 of the License, or (at your option) any later version.")
    assert spdx_ids(text) == ["LGPL-2.1-or-later"]


def test_full_apache_text_is_full_text():
    text = ("\n\n                                 Apache License\n"
            "                           Version 2.0, January 2004\n\n"
            "   TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION\n\n"
            "   1. Definitions. (abridged)\n")
    assert detect_licenses(text) == [LicenseMatch(
        "Apache-2.0", 3, "full-text", "Apache License Version 2.0, January 2004")]


def test_full_gpl_text_sample_notice_does_not_make_it_or_later():
    text = """\
                    GNU GENERAL PUBLIC LICENSE
                       Version 3, 29 June 2007
 Copyright (C) 2007 Free Software Foundation, Inc. <https://fsf.org/>
   (terms abridged)
                     END OF TERMS AND CONDITIONS
            How to Apply These Terms to Your New Programs
    This program is free software: you can redistribute it and/or modify
    it under the terms of the GNU General Public License as published by
    the Free Software Foundation, either version 3 of the License, or
    (at your option) any later version.
Also add information on how to contact you by electronic and paper mail.
"""
    (match,) = detect_licenses(text)
    assert (match.spdx, match.line, match.how) == ("GPL-3.0-only", 1, "full-text")


def test_licences_in_one_file_are_judged_block_by_block():
    # a NOTICE-style file: a BSD-3 block, then a BSD-4 block; then a GPL-2+ notice and a GPL-2-only one.
    # The BSD-4 advertising clause must not veto the BSD-3 block, nor the "any later version" the -only one.
    bsd4 = LICENSED_TEXTS["BSD-3-Clause"].replace(
        " * 3. Neither", " * 3. All advertising materials mentioning features or use of this software\n"
                        " *    must display an acknowledgement.\n * 4. Neither")
    gpl2_only = """\
 This is free software; you can redistribute it and/or modify
 it under the terms of version 2 of the GNU General Public License.
 See the GNU General Public License for more details.
"""
    text = (LICENSED_TEXTS["BSD-3-Clause"] + bsd4 + LICENSED_TEXTS["GPL-2.0-or-later"]
            + "# See the GNU General Public License for more details.\n" + gpl2_only)
    found = [(m.spdx, m.line) for m in detect_licenses(text)]
    assert found == [("BSD-3-Clause", 3), ("BSD-4-Clause", 12), ("GPL-2.0-or-later", 21), ("GPL-2.0-only", 27)]


def test_later_sentences_of_a_notice_do_not_escape_its_or_later():
    filler = "# This program is distributed in the hope that it will be useful, but WITHOUT ANY WARRANTY.\n" * 8
    text = ("# This program is free software; you can redistribute it and/or modify\n"
            "# it under the terms of the GNU General Public License as published by\n"
            "# the Free Software Foundation; either version 3, or (at your option)\n"
            "# any later version.\n" + filler +
            "# See the GNU General Public License for more details.\n"
            "# Section 7 of the GNU General Public License, version 3, grants extra permissions.\n")
    assert spdx_ids(text) == ["GPL-3.0-or-later"]


def test_wording_far_apart_does_not_combine():
    text = "# MIT License\n" + "x = 1\n" * 1000 + '# THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND\n'
    assert detect_licenses(text) == []


def test_evidence_is_shortened_to_200_chars():
    long_line = "# Licensed under the Apache License, Version 2.0 " + "and more words " * 30
    (match,) = detect_licenses(long_line)
    assert match.spdx == "Apache-2.0" and len(match.text) <= 200 and match.text.endswith("…")


# ---------------------------------------------------------------- SPDX identifiers

@pytest.mark.parametrize("line, expected", [
    ("# SPDX-License-Identifier: Apache-2.0", "Apache-2.0"),
    ("// SPDX-License-Identifier: Apache-2.0 OR MIT", "Apache-2.0 OR MIT"),
    ("/* SPDX-License-Identifier: GPL-2.0-only WITH Classpath-exception-2.0 */",
     "GPL-2.0-only WITH Classpath-exception-2.0"),
    ('"""SPDX-License-Identifier: (MIT OR Apache-2.0) AND BSD-3-Clause"""', "(MIT OR Apache-2.0) AND BSD-3-Clause"),
    ("-- SPDX-License-Identifier: LicenseRef-Llama-3-Community", "LicenseRef-Llama-3-Community"),
    ("# SPDX-License-Identifier: see LICENSE", None),
    ("# SPDX-License-Identifier: <SPDX License Expression>", None),
    ("# SPDX-License-Identifier: MIT OR", None),
    ("# SPDX-License-Identifier: (Apache-2.0", None),
    ("# SPDX-License-Identifier: MIT WITH", None),
])
def test_spdx_identifier_lines(line, expected):
    got = detect_licenses(f"#!/usr/bin/env python\n{line}\n")
    if expected is None:
        assert got == []
    else:
        assert [(m.spdx, m.line, m.how) for m in got] == [(expected, 2, "spdx-id")]


# ---------------------------------------------------------------- combined expression

def test_spdx_property_joins_distinct_licences_in_order():
    text = LICENSED_TEXTS["MPL-2.0"] + "\n" * 3 + APACHE_HEADER
    assert analyse(text).spdx == "MPL-2.0 AND Apache-2.0"


def test_header_matching_a_declared_expression_adds_nothing():
    text = "# SPDX-License-Identifier: Apache-2.0 OR MIT\n" + APACHE_HEADER
    info = analyse(text)
    assert [m.how for m in info.licenses] == ["spdx-id", "header"]
    assert info.spdx == "Apache-2.0 OR MIT"


def test_or_expression_is_parenthesised_when_combined():
    text = "# SPDX-License-Identifier: Apache-2.0 OR MIT\n" + LICENSED_TEXTS["GPL-3.0-or-later"]
    assert analyse(text).spdx == "(Apache-2.0 OR MIT) AND GPL-3.0-or-later"


def test_repeated_identifier_is_one_licence():
    text = "# SPDX-License-Identifier: MIT\nx = 1\n# SPDX-License-Identifier: MIT\n# SPDX-License-Identifier: Apache-2.0\n"
    assert analyse(text).spdx == "MIT AND Apache-2.0"


def test_no_licence_gives_none():
    assert analyse("import os\n").spdx is None
    assert LicenseInfo([], []).spdx is None


# ---------------------------------------------------------------- copyrights

@pytest.mark.parametrize("line, years, holder", [
    ("# Copyright (c) 2024 Example Labs", "2024", "Example Labs"),
    ("# Copyright 2019-2024 Example Labs. All rights reserved.", "2019-2024", "Example Labs"),
    ("# © 2023 Jane Doe", "2023", "Jane Doe"),
    ("# (c) 2022 Jane Doe", "2022", "Jane Doe"),
    ("# Copyright (C) 2020, 2021 Example Labs", "2020, 2021", "Example Labs"),
    ("# Copyright Example Labs 2024", "2024", "Example Labs"),
    ("# SPDX-FileCopyrightText: 2024 Example Labs", "2024", "Example Labs"),
    ("// SPDX-FileCopyrightText: Copyright (c) 2024 Example Labs", "2024", "Example Labs"),
    (" * Copyright (c) Meta Platforms, Inc. and affiliates.", None, "Meta Platforms, Inc. and affiliates"),
    ("# Copyright 2018 - 2020 by The Example Authors.", "2018-2020", "The Example Authors"),
    ("# Copyright (c) 2024, Jane Doe <jane@example.org>", "2024", "Jane Doe"),
    ("# Copyright 2024 Google LLC.", "2024", "Google LLC"),
    ("# Copyright 2024 Example Labs. Licensed under the MIT License.", "2024", "Example Labs"),
    ("copyright = '2020-2024, NVIDIA'", "2020-2024", "NVIDIA"),
    ("# Copyright 2011 -- present Example Developers.", "2011-present", "Example Developers"),
    ("# Copyright 2017- Jane Doe", "2017-", "Jane Doe"),
    ("# COPYRIGHT 2020 EXAMPLE LABS", "2020", "EXAMPLE LABS"),
    ("# Copyright Jane Doe 2013. BSD 3-Clause license, see LICENSE file.", "2013", "Jane Doe"),
])
def test_copyright_variants(line, years, holder):
    (c,) = find_copyrights("import os\n" + line + "\n")
    assert (c.line, c.years, c.holder) == (2, years, holder)


def test_copyright_text_keeps_wording_without_comment_markers():
    (c,) = find_copyrights("/*   Copyright   (c) 2024   Example Labs.  All rights reserved. */")
    assert c.text == "Copyright (c) 2024 Example Labs. All rights reserved."


@pytest.mark.parametrize("line", [
    "# The above copyright notice and this permission notice shall be included in",
    "#  copyright notice and this permission notice shall be included",
    "# THIS SOFTWARE IS PROVIDED BY THE COPYRIGHT HOLDERS AND CONTRIBUTORS",
    "# COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM",
    "   Copyright [yyyy] [name of copyright owner]",
    "   Copyright (c) [yyyy] [name of copyright owner]",
    "# Copyright (c) <year> <copyright holders>",
    "   copyright license to reproduce, prepare Derivative Works of,",
    "   (c) You must retain, in the Source form of any Derivative Works",
    "    Copyright (C) <year>  <name of author>",
    "# Copyright",
    "# Copyright (c) 2024",
    "copyright is held by whoever wrote it",
    "Copyright: This module has been placed in the public domain.",
    'copyright = f"2024, {__author__}"',
])
def test_boilerplate_is_not_a_copyright(line):
    assert find_copyrights(line) == []


# ---------------------------------------------------------------- holders

@pytest.mark.parametrize("a, b, same", [
    ("The HuggingFace Inc. team", "the huggingface inc team", True),
    ("Meta Platforms, Inc.", "Meta Platforms Inc", True),
    ("Hugging Face, Inc.", "HuggingFace Inc", True),
    ("Black & Decker", "Black and Decker", True),
    ("Example Labs. All rights reserved.", "Example Labs", True),
    ("The Qwen team, Alibaba Group", "The vLLM team", False),
    ("Meta Platforms, Inc.", "Meta Platforms, Inc. and affiliates", False),
    ("", "", False),
])
def test_holders_match(a, b, same):
    assert holders_match(a, b) is same
    assert holders_match(b, a) is same


# ---------------------------------------------------------------- head_lines

def test_head_lines_limits_what_is_read():
    text = "x = 1\n" * 250 + APACHE_HEADER
    assert analyse(text).licenses == [] and analyse(text).copyrights == []
    info = analyse(text, head_lines=None)
    assert info.spdx == "Apache-2.0"
    assert [(c.line, c.years) for c in info.copyrights] == [(252, "2024")]
    assert analyse(APACHE_HEADER, head_lines=3).licenses == []  # the grant starts on line 4


# ---------------------------------------------------------------- repo licence files

@pytest.mark.parametrize("name", [
    "LICENSE", "LICENSE.txt", "license.md", "LICENCE", "LICENSE-MIT", "LICENSES", "COPYING", "COPYING.LESSER",
    "NOTICE", "NOTICE.md", "COPYRIGHT", "THIRD_PARTY_NOTICES.txt", "third-party-licenses.md", "ThirdPartyNotices",
    "CREDITS", "CREDITS.rst", "ACKNOWLEDGEMENTS.md", "Acknowledgments",
])
def test_repo_license_file_names(name):
    assert REPO_LICENSE_FILE_RE.match(name)


@pytest.mark.parametrize("name", [
    "README.md", "licenses.py", "copyright_check.sh", "noticeboard.txt", "licensee.txt", "MY_LICENSE",
    "setup.py", "third_party_utils.py",
])
def test_repo_license_file_non_names(name):
    assert not REPO_LICENSE_FILE_RE.match(name)
