"""``--help`` of every command: a description, and defaults stated in their real order."""

import pytest

from streamae.cli import COMMANDS, main


def run(capsys, *args: str) -> tuple[int, str, str]:
    """A command argparse ends (help or usage error): exit code, stdout, stderr."""
    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


@pytest.mark.parametrize(
    "command",
    [[name] for name in COMMANDS] + [["broker", action] for action in ("start", "stop", "status")],
)
def test_every_command_has_help_with_a_description(capsys, command):
    code, out, _ = run(capsys, *command, "--help")
    assert code == 0
    usage, _, rest = out.partition("\n\n")
    assert usage.startswith("usage: ")
    assert rest.split("\n\n")[0] and not rest.startswith(("positional arguments", "options"))


def test_detect_stride_says_the_environment_sets_its_default(capsys):
    _, out, _ = run(capsys, "detect", "--help")
    assert "(default: STREAMAE_STRIDE or 1)" in " ".join(out.split())


def test_benchmark_window_default_puts_the_environment_before_the_profile(capsys):
    _, out, _ = run(capsys, "benchmark", "--help")
    assert "(default: STREAMAE_WINDOW_SIZE, else the profile's, else 64)" in " ".join(out.split())


def test_benchmark_without_a_corpus_says_the_corpus_is_required(capsys):
    code, _, err = run(capsys, "benchmark")
    assert code == 2
    assert "{nab,skab}" in err  # the usage line shows the choices
    assert "the following arguments are required: corpus" in err
