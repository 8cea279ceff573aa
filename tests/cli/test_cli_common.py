"""CLI conventions: errors print what they are given, literally."""

from __future__ import annotations

import pytest

from keyturn.cli import common


def test_fail_prints_markup_and_emoji_codes_literally(capsys):
    with pytest.raises(SystemExit) as exit_info:
        common.fail("user [bold]ops[/bold] :smile: \\[x]", 1)
    assert exit_info.value.code == 1
    assert capsys.readouterr().err.strip() == "error: user [bold]ops[/bold] :smile: \\[x]"
