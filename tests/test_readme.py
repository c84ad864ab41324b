"""The README cannot drift: every command in it is run here, or covered by a named test.

    PYTHONPATH=python python -m pytest tests/test_readme.py -q

Each command of the README's ```bash blocks (continuation lines joined, comments cut)
matches the first entry of ``TABLE`` that fits, and that entry says how it is checked:

- ``Run``: cheap and safe, so it runs here (in a scratch folder that links ``configs/`` and
  ``scripts/``) and must exit 0;
- ``Covered``: a test (or the script CI runs) exercises it; each named file must exist and
  contain the needle (the command's module, arguments or function), so deleting or
  rewriting that test breaks this one;
- ``NotRun``: needs a GPU, docker, Cloudflare or the AIHub download; the reason is given.

A command no entry matches fails, naming the command; an entry no command matches fails
too (a stale table hides drift). Beyond that, every ``python -m pillsnap.X`` in the README
(code blocks and inline) must name a module whose ``--help`` (and subcommand's ``--help``)
exits 0 and lists every ``--flag`` the README passes it; every dotted config key written
anywhere in the README must be a key of the schema; and each command's overrides must
resolve into a valid config.
"""

from __future__ import annotations

import ast
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

from pillsnap.config.loader import check_dotted_key, load_config
from pillsnap.config.schema import PillsnapConfig
from pillsnap.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"


@dataclass(frozen=True)
class Run:
    """Runs here as written; must exit 0."""

    pattern: str


@dataclass(frozen=True)
class Covered:
    """Exercised elsewhere: each (file, needle) pair must exist."""

    pattern: str
    where: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class NotRun:
    """Documented, not run here, for the reason given."""

    pattern: str
    reason: str


Entry = Run | Covered | NotRun

# First match wins: more specific patterns come first.
TABLE: tuple[Entry, ...] = (
    # quick start
    Covered(r"^\./scripts/demo\.sh\b", (
        ("scripts/demo.sh", "python -m pillsnap.demo"),
        ("tests/test_demo.py", '"-m", "pillsnap.demo", "--profile", "quick"'),
        ("tests/test_demo.py", '"--stop"'))),
    Covered(r"^\./scripts/test\.sh$", (
        (".ci/run", "scripts/test.sh"), ("scripts/test.sh", "python -m pytest"))),
    # your own AIHub data
    NotRun(r"\bunzip\b", "extracts the AIHub zips (a 4.2 TB download)"),
    Covered(r"^python -m pillsnap\.data scan\b", (
        ("tests/data/test_scan.py", '"-m", "pillsnap.data", "scan"'),)),
    Covered(r"^python -m pillsnap\.data stage\b", (
        ("tests/data/test_stage.py", "make_stage("),)),
    Covered(r"^python -m pillsnap\.data pack\b", (
        ("tests/data/test_pack_loader.py", '"-m", "pillsnap.data", "pack"'),)),
    Covered(r"^python -m pillsnap\.data synth\b", (
        ("tests/data/test_synth.py", "generate("),)),
    # training
    Covered(r"^python -m pillsnap\.train\.detect\b.*\btrain\.resume=last\b", (
        ("tests/train/test_detect.py", '"train.resume=last"'),
        ("tests/train/test_detect.py",
         "test_detector_killed_mid_epoch_resumes_from_its_last_finished_epoch"))),
    Covered(r"^python -m pillsnap\.train\b.*\btrain\.resume=last\b", (
        ("tests/train/test_resume.py", '"train.resume=last"'),
        ("tests/train/test_resume.py", '"-m", "pillsnap.train"'))),
    Covered(r"^python -m pillsnap\.train\b.*\btrain\.task=(det|both)\b", (
        ("tests/train/test_smoke.py", '"train.task=both"'),
        ("tests/train/test_smoke.py", '"train.task=det"'),
        ("tests/train/test_detect.py", '"-m", "pillsnap.train.detect"'))),
    # DDP runs here with gloo on two CPU processes; NCCL on several GPUs is not run here
    Covered(r"^torchrun --nproc_per_node=\d+ -m pillsnap\.train\b", (
        ("tests/train/test_ddp.py", '"torch.distributed.run", "--standalone"'),
        ("tests/train/test_ddp.py", "train_classifier("))),
    Covered(r"^python -m pillsnap\.train\b", (
        ("tests/train/test_resume.py", '"-m", "pillsnap.train"'),
        ("tests/train/test_smoke.py", "train_classifier("))),
    # export and parity
    Covered(r"^python -m pillsnap\.export\b.*--quantize int8\b", (
        ("tests/export/test_int8.py", '"--quantize", "int8"'),)),
    Covered(r"^python -m pillsnap\.export\b.*--triton\b", (
        ("tests/conftest.py", 'export_main(["--triton"'),
        ("tests/bench/test_bench_serve.py", 'export_main(["--triton"'))),
    Covered(r"^python -m pillsnap\.eval\b.*--enroll\b", (
        ("tests/eval/test_unknown_drugs.py", "enrolled_report("),
        ("tests/test_demo.py", 'evaluation["enrolled"]'))),
    # enrollment
    Covered(r"^python -m pillsnap\.enroll\b.*--from-export\b", (
        ("tests/enroll/test_enroll.py", '"--from-export"'),)),
    Covered(r"^python -m pillsnap\.enroll\b.*--(list|remove|rollback)\b", (
        ("tests/enroll/test_enroll.py", '"--remove"'),
        ("tests/enroll/test_enroll.py", '"--rollback"'),
        ("tests/enroll/test_enroll.py", "actions.listing("))),
    Covered(r"^python -m pillsnap\.enroll\b.*--k-code\b", (
        ("tests/enroll/test_enroll.py", '"-m", "pillsnap.enroll"'),
        ("tests/enroll/test_enroll.py", '"--triton-repo"'))),
    Covered(r"^python -m pillsnap\.eval\b.*--triton-url\b", (
        ("tests/triton/test_eval_backends.py", "triton_url="),)),
    Covered(r"^python -m pillsnap\.eval\b", (
        ("tests/eval/test_eval_cli.py", "main([\"--export\""),)),
    Covered(r"^python -m pillsnap\.export\b", (
        ("tests/export/test_export.py", 'main(["--ckpt"'),
        ("tests/export/test_export.py", "det_ckpt"))),
    # Triton
    NotRun(r"^docker build -f deploy/triton/Dockerfile\b", "needs a docker engine and the "
           "network (no docker here); tests/triton/test_server.py checks the Dockerfile "
           "against the config and the --docker command"),
    Run(r"^python -m pillsnap\.serve triton --docker\b"),
    Covered(r"^python -m pillsnap\.serve triton\b", (
        ("tests/triton/test_server.py", '"-m", "pillsnap.serve", "triton"'),)),
    # API
    Run(r"^echo \"API_KEY=\$\(python -c '.*secrets\.token_urlsafe\(\).*'\)\" >> \.env$"),
    Covered(r"^python -m pillsnap\.serve api\b", (
        ("tests/conftest.py", '"-m", "pillsnap.serve", "api"'),
        ("tests/serve/test_settings.py", '"-m", "pillsnap.serve", "api"'))),
    Covered(r"^curl .*/predict\b", (
        ("tests/test_api_min.py", "/predict"), ("tests/test_api_min.py", '"X-API-Key"'),
        ("tests/serve/test_bad_input.py", "/predict"))),
    Covered(r"^curl .*/version$", (
        ("tests/serve/test_http_features.py", '"/version"'),
        ("tests/serve/test_release_switch.py", "/version"))),
    # tunnels
    Run(r"^scripts/tunnel\.sh config\b"),
    Covered(r"^scripts/tunnel\.sh quick\b", (
        ("tests/ops/test_tunnel.py", '"quick", "--port"'),)),
    NotRun(r"^cloudflared tunnel login$", "needs a Cloudflare account and a browser"),
    NotRun(r"^scripts/tunnel\.sh named\b", "needs cloudflared logged in to a Cloudflare "
           "account (it creates the tunnel and a DNS route)"),
    NotRun(r"^scripts/tunnel\.sh service\b", "installs a systemd service with sudo"),
    # operations
    *(Covered(rf"^python -m pillsnap\.ops {sub}\b", (
        ("tests/ops/test_ops_commands.py", f'main(["{sub}"'),))
      for sub in ("release", "releases", "rollback", "activate", "verify")),
    Covered(r"^python -m pillsnap\.ops backup\b", (
        ("tests/ops/test_ops_commands.py", "backup_runs("),)),
    Covered(r"^python -m pillsnap\.ops rotate-logs\b", (
        ("tests/ops/test_ops_commands.py", "rotate_logs("),)),
    Covered(r"^python -m pillsnap\.bench serve\b", (
        ("tests/bench/test_bench_serve.py", "serve.run("),)),
    Covered(r"^python -m pillsnap\.bench train\b", (
        ("tests/bench/test_bench_train.py", "train.run("),)),
    # configuration, building
    Run(r"^python -m pillsnap\.config (show|check)\b"),
    Run(r"^python -m pillsnap$"),
    Covered(r"^pip install -e \"\.\[dev\]\"$", (
        ("scripts/env.sh", 'pip install -e ".[dev]"'), (".ci/run", "scripts/test.sh"))),
    Covered(r"^cargo test$", (("scripts/test.sh", "cargo test"), (".ci/run", "scripts/test.sh"))),
)

CONFIG_SECTIONS = tuple(PillsnapConfig.model_fields)
# "train.pack", "data.yaml", "train.log": file names that start like a config section
FILE_SUFFIXES = {"pack", "log", "json", "jsonl", "yaml", "yml", "py", "pt", "onnx", "md", "sh",
                 "gz", "txt", "csv", "pbtxt", "html", "js", "css"}
SHELL_OPERATORS = {"|", "||", "&&", ";", ">", ">>", "<", "&"}


# --- reading the README ------------------------------------------------------------------

def code_blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", text, flags=re.S | re.M)


def strip_comment(line: str) -> str:
    """Cut a shell comment: a # outside quotes, at the start or after whitespace."""
    quote = ""
    for i, char in enumerate(line):
        if quote:
            if char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip()
    return line.rstrip()


def bash_commands(text: str) -> list[str]:
    """Every command of the ```bash blocks, one per logical line."""
    commands: list[str] = []
    for block in code_blocks(text, "bash"):
        pending = ""
        for raw in block.splitlines():
            line = strip_comment(raw)
            if line.endswith("\\"):
                pending += line[:-1].strip() + " "
                continue
            command = (pending + line.strip()).strip()
            pending = ""
            if command:
                commands.append(re.sub(r"\s+", " ", command))
    return commands


def inline_spans(text: str) -> list[str]:
    """Inline code spans outside the fenced blocks."""
    prose = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    return re.findall(r"`([^`\n]+)`", prose)


def entry_for(command: str, table: Iterable[Entry] = TABLE) -> Entry | None:
    return next((e for e in table if re.search(e.pattern, command)), None)


@dataclass(frozen=True)
class ModuleCall:
    """``python -m pillsnap.X [SUB] args`` inside a command (or ./scripts/demo.sh args)."""

    module: str
    argv: tuple[str, ...]


def module_call(command: str) -> ModuleCall | None:
    try:
        tokens = shlex.split(command)
    except ValueError:
        return None
    for i, token in enumerate(tokens):
        if token == "-m" and i + 1 < len(tokens) and tokens[i + 1].split(".")[0] == "pillsnap":
            module, rest = tokens[i + 1], tokens[i + 2:]
            break
        if token in ("./scripts/demo.sh", "scripts/demo.sh"):  # it runs python -m pillsnap.demo
            module, rest = "pillsnap.demo", tokens[i + 1:]
            break
    else:
        return None
    argv = []
    for token in rest:
        if token in SHELL_OPERATORS:
            break
        argv.append(token)
    return ModuleCall(module, tuple(argv))


def config_keys(text: str) -> set[str]:
    """Dotted config keys written in the text (``train.batch_size=128``, ``serve.max_pixels``)."""
    sections = "|".join(CONFIG_SECTIONS)
    found = set()
    for match in re.finditer(rf"(?<![\w.-])((?:{sections})(?:\.[a-z_][a-z0-9_]*)+)", text):
        key = match.group(1)
        if key.rsplit(".", 1)[1] not in FILE_SUFFIXES:
            found.add(key)
    return found


def overrides_of(call: ModuleCall) -> tuple[Path | None, list[str]]:
    cfg, overrides = None, []
    argv = list(call.argv)
    for i, token in enumerate(argv):
        if token == "--cfg" and i + 1 < len(argv):
            cfg = REPO / argv[i + 1]
        elif not token.startswith("-") and "=" in token and "." in token.split("=", 1)[0]:
            overrides.append(token)
    return cfg, overrides


# --- running help texts ------------------------------------------------------------------

def _env() -> dict[str, str]:
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    python_path = os.pathsep.join(filter(None, [str(REPO / "python"),
                                                os.environ.get("PYTHONPATH", "")]))
    env = {**os.environ, "PATH": path, "PYTHONPATH": python_path}
    for name in ("API_KEY", "TRITON_ADMIN_KEY", "MODEL_PATH", "TRITON_URL"):
        env.pop(name, None)
    return env


@cache
def help_text(module: str, sub: str | None = None) -> tuple[int, str]:
    argv = [sys.executable, "-m", module, *([sub] if sub else []), "--help"]
    done = subprocess.run(["nice", *argv], capture_output=True, text=True, check=False,
                          cwd=REPO, env=_env(), timeout=120)
    return done.returncode, done.stdout + done.stderr


def subcommands(help_output: str) -> set[str]:
    """The choices of a positional ``{a,b}`` in the usage line, not of an option's value."""
    words = help_output.split("\n\n", 1)[0].split()
    return {name for before, word in zip(["", *words], words, strict=False)
            if re.fullmatch(r"\{[\w,-]+\}", word)
            and not (before.lstrip("[").startswith("-") and not before.endswith("]"))
            for name in word[1:-1].split(",")}


def help_problems(call: ModuleCall) -> list[str]:
    """What the module's --help does not confirm about this call; empty when all is well."""
    rc, text = help_text(call.module)
    if rc != 0:
        return [f"python -m {call.module} --help exits {rc}: {text[-300:]}"]
    sub = call.argv[0] if call.argv and call.argv[0] in subcommands(text) else None
    if sub:
        rc, text = help_text(call.module, sub)
        if rc != 0:
            return [f"python -m {call.module} {sub} --help exits {rc}: {text[-300:]}"]
    where = f"python -m {call.module}{' ' + sub if sub else ''} --help"
    problems = []
    for flag in (t.split("=", 1)[0] for t in call.argv if t.startswith("--")):
        if not re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", text):
            problems.append(f"{flag} is not an option of {where}")
    return problems


def check_help(calls: Iterable[ModuleCall]) -> list[str]:
    calls = list(dict.fromkeys(calls))
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(help_problems, calls))
    return [f"{' '.join(['python -m', c.module, *c.argv])}: {p}"
            for c, ps in zip(calls, results, strict=True) for p in ps]


def key_problems(keys: Iterable[str]) -> list[str]:
    problems = []
    for key in sorted(keys):
        try:
            check_dotted_key(key, source="README")
        except ConfigError as exc:
            problems.append(str(exc).split(" Valid keys")[0])
    return problems


# --- the tests ---------------------------------------------------------------------------

TEXT = README.read_text(encoding="utf-8")
COMMANDS = bash_commands(TEXT)


def test_every_command_is_run_covered_or_listed() -> None:
    assert len(COMMANDS) >= 30, "the README's bash blocks were not found"
    unmatched = [c for c in COMMANDS if entry_for(c) is None]
    assert not unmatched, ("README commands that are neither run here, covered by a test, "
                           "nor listed as not run (add them to TABLE in tests/test_readme.py):"
                           "\n  " + "\n  ".join(unmatched))


def test_every_table_entry_matches_a_readme_command() -> None:
    used = {id(entry_for(c)) for c in COMMANDS}
    stale = [e.pattern for e in TABLE if id(e) not in used]
    assert not stale, f"TABLE entries no README command uses (remove them): {stale}"


def test_covering_tests_exist_and_exercise_the_command() -> None:
    problems = []
    for command in COMMANDS:
        entry = entry_for(command)
        if not isinstance(entry, Covered):
            continue
        for name, needle in entry.where:
            path = REPO / name
            if not path.is_file():
                problems.append(f"{command!r}: {name} does not exist")
            elif needle not in path.read_text(encoding="utf-8"):
                problems.append(f"{command!r}: {name} no longer contains {needle!r}")
    assert not problems, "\n".join(problems)


RUNNABLE = [c for c in COMMANDS if isinstance(entry_for(c), Run)]


@pytest.fixture
def scratch(tmp_path: Path) -> Path:
    """A working directory like the repository root, so nothing lands in the checkout."""
    for name in ("configs", "scripts", "config.yaml"):
        (tmp_path / name).symlink_to(REPO / name)
    return tmp_path


@pytest.mark.parametrize("command", RUNNABLE)
def test_runnable_command_succeeds(command: str, scratch: Path) -> None:
    done = subprocess.run(["nice", "bash", "-c", f"set -euo pipefail; {command}"],
                          capture_output=True, text=True, check=False, cwd=scratch, env=_env(),
                          timeout=120)
    assert done.returncode == 0, f"{command}\n{done.stdout[-1500:]}\n{done.stderr[-1500:]}"


def test_module_commands_exist_and_accept_their_flags() -> None:
    calls = [call for c in COMMANDS if (call := module_call(c))]
    calls += [call for span in inline_spans(TEXT)
              if "-m pillsnap" in span and (call := module_call(span))]
    assert {c.module for c in calls} >= {"pillsnap.data", "pillsnap.train", "pillsnap.export",
                                         "pillsnap.serve", "pillsnap.ops", "pillsnap.demo"}
    problems = check_help(calls)
    assert not problems, "\n".join(problems)


def test_the_command_list_names_every_subcommand() -> None:
    """``python -m pillsnap`` (a README command) lists each module's subcommands."""
    done = subprocess.run([sys.executable, "-m", "pillsnap"], capture_output=True, text=True,
                          check=True, cwd=REPO, env=_env())
    listing = done.stdout
    modules = re.findall(r"python -m (pillsnap[\w.]*)", listing)
    assert "pillsnap.serve" in modules
    missing = []
    for module in modules:
        rc, text = help_text(module)
        assert rc == 0, text
        missing += [f"{module} {sub}" for sub in sorted(subcommands(text))
                    if not re.search(rf"(?<![\w-]){re.escape(sub)}(?![\w-])", listing)]
    assert not missing, f"python -m pillsnap does not list: {missing}"


def test_tunnel_commands_are_in_the_script_usage() -> None:
    usage = (REPO / "scripts" / "tunnel.sh").read_text(encoding="utf-8").split("set -euo")[0]
    problems = []
    for command in COMMANDS:
        if command.startswith("scripts/tunnel.sh "):
            sub, *args = shlex.split(command)[1:]
            for word in [sub, *(a for a in args if a.startswith("--"))]:
                if not re.search(rf"(?<![\w-]){re.escape(word)}(?![\w-])", usage):
                    problems.append(f"{command}: {word} is not in scripts/tunnel.sh's usage")
    assert not problems, "\n".join(problems)


def test_config_keys_in_the_readme_are_real() -> None:
    keys = config_keys(TEXT)
    assert {"train.resume", "serve.max_pixels", "export.opset"} <= keys
    problems = key_problems(keys)
    assert not problems, "\n".join(problems)


def test_command_overrides_resolve_to_a_valid_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    problems = []
    for command in COMMANDS:
        call = module_call(command)
        if call is None:
            continue
        cfg, overrides = overrides_of(call)
        if not overrides:
            continue
        try:
            load_config(cfg or REPO / "config.yaml", overrides, env_file=None, environ={})
        except ConfigError as exc:
            problems.append(f"{command}: {exc}")
    assert not problems, "\n".join(problems)


def test_python_examples_are_valid_python() -> None:
    blocks = code_blocks(TEXT, "python")
    assert len(blocks) >= 2
    for block in blocks:
        ast.parse(block)


# --- the checker itself catches drift ------------------------------------------------------

DRIFTED = """
```bash
python -m pillsnap.data scan --cfg configs/rtx5080-wsl.yaml \\
    --workers 2   # a comment with a # inside
python -m pillsnap.frobnicate --now
python -m pillsnap.ops release --export x --no-such-flag
python -m pillsnap.serve api --repository triton_models
python -m pillsnap.train train.batchsize=3
```
"""


def test_the_checks_fail_on_drift() -> None:
    commands = bash_commands(DRIFTED)
    assert commands[0] == "python -m pillsnap.data scan --cfg configs/rtx5080-wsl.yaml --workers 2"
    assert entry_for("python -m pillsnap.frobnicate --now") is None
    problems = check_help([call for c in commands if (call := module_call(c))])
    assert any("pillsnap.frobnicate --help exits" in p for p in problems), problems
    assert any("--no-such-flag is not an option of python -m pillsnap.ops release" in p
               for p in problems), problems
    # a flag of a sibling subcommand (serve triton) is not one of serve api
    assert any("--repository is not an option of python -m pillsnap.serve api" in p
               for p in problems), problems
    assert not any("data scan" in p for p in problems), problems
    assert key_problems(config_keys(DRIFTED)) == [
        "README: unknown config key 'train.batchsize'. Did you mean 'train.batch_size'?"]
    assert config_keys("train.pack, data.yaml, pillsnap.train.detect") == set()
