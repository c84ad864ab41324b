"""Start tritonserver on a PillSnap model repository and wait until its ensembles are ready.

    python -m pillsnap.serve triton --repository triton_models          # CPU, bundled binary
    with TritonServer(TritonLaunch(Path("triton_models"), Ports(8100, 8101, 8102))) as server:
        server.url                                                       # http://127.0.0.1:8100

Without docker it runs the tritonserver 2.51 binary bundled in the ``nvidia-pytriton`` wheel
(python backend only, so ``--model-config-name=cpu``). What makes that binary run
(docs/triton.md, "The server"): numpy < 2; the python backend stub built for this Python,
copied with the backend into a private backend directory (the wheel's own folder is left
untouched); this environment's ``bin`` first on PATH (the stub's embedded Python finds its
packages from it); LD_LIBRARY_PATH with the wheel's ``nvidia_pytriton.libs`` and the
directory of ``libpython3.X.so.1.0``; a shared-memory prefix of its own per server, so
parallel servers do not collide. Production flags: model control none, auto-complete off,
strict readiness, admin APIs behind a header. ``docker_command`` gives the equivalent for
GPUs, in the image ``deploy/triton/Dockerfile`` builds from NVIDIA's.

When the server exits, for any reason (stopped, crashed, ``kill -9``), a watcher thread
SIGKILLs what it left: the rest of its process group and any python backend stub whose
command line carries its shm prefix, then removes its ``/dev/shm/<prefix>*`` regions. A
server killed mid-request leaves stubs behind otherwise (1 or 2 of 6 here, under PID 1,
100-200 MB each, deaf to SIGTERM). Nothing of another server matches: each has its own
group and prefix.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.util
import logging
import os
import re
import secrets
import shutil
import socket
import sys
import sysconfig
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from pillsnap.child import Child, NotReady, http_ok, log_tail, read_log
from pillsnap.errors import ServerError
from pillsnap.infer.triton_contract import ENSEMBLES
from pillsnap.procs import Proc, kill_and_wait, processes

logger = logging.getLogger(__name__)

RESTRICTED_APIS = "model-repository,shared-memory,statistics,trace,logging"
CONTAINER_REPOSITORY = "/models"
BACKEND_FILES = ("libtriton_python.so", "triton_python_backend_utils.py")
STUB = "triton_python_backend_stub"
SHM = Path("/dev/shm")


@dataclass(frozen=True)
class Ports:
    http: int
    grpc: int
    metrics: int


def free_ports() -> Ports:
    """Three ports free right now (the OS picks them; parallel servers do not collide)."""
    sockets = [socket.socket() for _ in range(3)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return Ports(*ports)


@dataclass(frozen=True)
class TritonLaunch:
    """How to start one server (``python -m pillsnap.serve triton`` fills it from config)."""

    repository: Path
    ports: Ports
    cpu: bool = True  # --model-config-name=cpu: ONNX Runtime on the CPU via python models
    startup_timeout_s: float = 120.0
    # Triton waits this long on stop for in-flight requests *and* idle keep-alive
    # connections (a proxy's pool always has some), so it bounds every shutdown
    exit_timeout_s: int = 10
    admin_header: str = "triton-admin-key"
    admin_key: str = field(default_factory=lambda: secrets.token_urlsafe(18), repr=False)
    host: str = "127.0.0.1"  # where this process polls readiness
    log_file: Path | None = None  # default: a temporary file, kept when start-up fails
    # POSIX shm names live in one namespace per machine: one prefix per server
    shm_prefix: str = field(default_factory=lambda: f"pillsnap{os.getpid()}_"
                            f"{secrets.token_hex(4)}_")

    def ensembles(self) -> tuple[str, ...]:
        """The ensembles this repository has (pill_combo needs a detector)."""
        found = tuple(e for e in ENSEMBLES if (self.repository / e / "config.pbtxt").is_file())
        if not found:
            raise ServerError(f"{self.repository} has no pill_single or pill_combo model: write "
                              "it with python -m pillsnap.export --triton --out "
                              f"{self.repository}")
        return found


# ---------------------------------------------------------------------------- the command


def production_flags(launch: TritonLaunch, repository: str) -> list[str]:
    """Flags both launchers share (the repository path as the server sees it)."""
    restricted = f"{RESTRICTED_APIS}:{launch.admin_header}={launch.admin_key}"
    flags = [f"--model-repository={repository}", "--model-control-mode=none",
             "--disable-auto-complete-config", "--strict-readiness=true",
             "--exit-on-error=true", f"--exit-timeout-secs={launch.exit_timeout_s}",
             f"--http-port={launch.ports.http}",
             f"--grpc-port={launch.ports.grpc}", f"--metrics-port={launch.ports.metrics}",
             f"--http-restricted-api={restricted}", f"--grpc-restricted-protocol={restricted}"]
    if launch.cpu:
        flags.append("--model-config-name=cpu")
    return flags


def host_command(launch: TritonLaunch, binary: Path | str) -> list[str]:
    """A tritonserver on this machine (not in a container, which has a /dev/shm of its own):
    the python backend's regions get this server's prefix, which reaping goes by."""
    return [str(binary), *production_flags(launch, str(launch.repository.resolve())),
            f"--backend-config=python,shm-region-prefix-name={launch.shm_prefix}"]


def bundled_command(launch: TritonLaunch, binary: Path, backends: Path) -> list[str]:
    return [*host_command(launch, binary), f"--backend-directory={backends}"]


DOCKERFILE = "deploy/triton/Dockerfile"


def docker_command(launch: TritonLaunch, image: str) -> list[str]:
    """``docker run`` for ``image``, built once from ``DOCKERFILE`` (``docker_build``): it
    has what the python models need, so the container starts offline and installs nothing."""
    ports = [f"-p{p}:{p}" for p in (launch.ports.http, launch.ports.grpc, launch.ports.metrics)]
    return ["docker", "run", "--gpus", "all", "--rm", "--shm-size=1g", *ports,
            "-v", f"{launch.repository.resolve()}:{CONTAINER_REPOSITORY}:ro", image,
            "tritonserver", *production_flags(launch, CONTAINER_REPOSITORY)]


def docker_build(image: str, base_image: str) -> list[str]:
    """The one-time ``docker build`` of ``image`` (run it in the repository's root)."""
    return ["docker", "build", "-f", DOCKERFILE, "--build-arg", f"BASE={base_image}",
            "-t", image, "."]


# ---------------------------------------------------------------------------- the bundled binary


def wheel_dir() -> Path:
    spec = importlib.util.find_spec("pytriton")  # find, not import: pytriton pulls in a lot
    if spec is None or not spec.submodule_search_locations:
        raise ServerError("the bundled tritonserver needs the nvidia-pytriton wheel: pip install "
                          "nvidia-pytriton==0.7.0 (or use --docker)")
    return Path(next(iter(spec.submodule_search_locations))) / "tritonserver"


def python_backend_dir(cache: Path | None = None) -> Path:
    """A backend directory whose python backend has the stub for this Python."""
    source = wheel_dir()
    tag = f"{sys.version_info.major}.{sys.version_info.minor}"
    stub = source / "python_backend_stubs" / tag / "triton_python_backend_stub"
    if not stub.is_file():
        raise ServerError(f"nvidia-pytriton has no python backend stub for Python {tag} "
                          f"({stub}); use Python 3.8-3.13 or --docker")
    root = (cache or Path.home() / ".cache" / "pillsnap") / f"triton-backends-py{tag}"
    if not (root / "python" / "triton_python_backend_stub").is_file():
        root.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix="backends.", dir=root.parent))
        (staging / "python").mkdir()
        for name in BACKEND_FILES:
            shutil.copy2(source / "backends" / "python" / name, staging / "python" / name)
        shutil.copy2(stub, staging / "python" / "triton_python_backend_stub")
        with contextlib.suppress(OSError):  # another process won the race: use its copy
            staging.rename(root)
        shutil.rmtree(staging, ignore_errors=True)
    return root


def bundled_env() -> dict[str, str]:
    """The environment the bundled binary and its python stubs need (see the docstring)."""
    numpy = importlib.metadata.version("numpy")
    if int(numpy.split(".")[0]) >= 2:
        raise ServerError(f"numpy {numpy} is installed; the bundled python backend needs "
                          "numpy<2: pip install 'numpy<2'")
    libpython = Path(sysconfig.get_config_var("LIBDIR") or "")
    soname = sysconfig.get_config_var("INSTSONAME") or ""
    if not (libpython / soname).is_file():
        raise ServerError(f"no shared libpython ({libpython / soname}): the python backend "
                          "stub needs a Python built with --enable-shared")
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    libs = [str(wheel_dir().parent.parent / "nvidia_pytriton.libs"), str(libpython)]
    env["LD_LIBRARY_PATH"] = os.pathsep.join(libs + [p for p in [env.get("LD_LIBRARY_PATH")]
                                                     if p])
    return env


# ---------------------------------------------------------------------------- the server


class TritonServer:
    """A running tritonserver; a context manager that stops it on exit."""

    def __init__(self, launch: TritonLaunch, *, command: list[str] | None = None,
                 env: dict[str, str] | None = None) -> None:
        self.launch = launch
        self.command = command
        self.env = env
        self.child: Child | None = None
        self.log_file = launch.log_file
        self._watcher: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.launch.host}:{self.launch.ports.http}"

    def __enter__(self) -> TritonServer:
        self.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def start(self) -> None:
        """Start the server and wait until every ensemble is ready (or raise ServerError).
        After ``stop`` (or an exit) it starts again: same ports, a fresh temporary log."""
        ensembles = self.launch.ensembles()
        if self.command is None:
            binary = wheel_dir() / "bin" / "tritonserver"
            self.command = bundled_command(self.launch, binary, python_backend_dir())
            self.env = bundled_env()
        self.log_file = self.launch.log_file
        if self.log_file is None:  # one per start: a restart keeps the crashed server's log
            handle, name = tempfile.mkstemp(prefix="tritonserver.", suffix=".log")
            os.close(handle)
            self.log_file = Path(name)
        logger.info("starting tritonserver (log: %s)", self.log_file)
        # its own session: Ctrl-C in a terminal reaches us, and we stop it in order; Triton
        # drains requests for exit_timeout_s on SIGTERM, so the grace period is 15 s more
        self.child = Child.start(self.command, name="tritonserver", log=self.log_file,
                                 env=self.env, new_group=True,
                                 grace_s=self.launch.exit_timeout_s + 15.0)
        self._watcher = threading.Thread(target=self._watch, args=(self.child.pid,),
                                         name=f"reaper of tritonserver {self.child.pid}",
                                         daemon=True)
        self._watcher.start()
        try:
            self._wait_ready(self.child, ensembles)
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self, child: Child, ensembles: tuple[str, ...]) -> None:
        pending = list(ensembles)

        def all_ready() -> bool:
            pending[:] = [e for e in pending if not self.model_ready(e)]
            return not pending

        try:
            child.wait_ready(all_ready, timeout_s=self.launch.startup_timeout_s, interval_s=0.25)
        except NotReady as exc:
            what = exc.reason if exc.code is not None else \
                f"{', '.join(pending)} not ready after {self.launch.startup_timeout_s:g} s"
            raise ServerError(self._failure(what)) from None

    def model_ready(self, model: str) -> bool:
        return http_ok(f"{self.url}/v2/models/{model}/ready")

    def exit_code(self) -> int | None:
        """The server's exit code (negative: the signal that killed it) once it has exited
        and what it left is reaped; None while it runs or when it was never started."""
        if self.child is None or self._watcher is None or self._watcher.is_alive():
            return None
        return self.child.process.poll()

    def stop(self) -> None:
        """SIGTERM (Triton drains requests for ``exit_timeout_s``), then SIGKILL to the whole
        group (its python stubs too) if it is still there 15 s later; returns once what it
        left is reaped. Nothing happens when it is not running."""
        child, self.child = self.child, None
        if child is not None:
            child.stop()
        if self._watcher is not None:
            self._watcher.join()

    def _watch(self, pid: int) -> None:
        """Wait until the server exits, then reap what it left. WNOWAIT leaves its zombie for
        Popen to collect, and while the zombie is there its pid (its group's id) cannot be
        given to another process."""
        with contextlib.suppress(ChildProcessError):  # Popen collected it first
            os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
        self.reap(pid)

    def leftovers(self, pgid: int) -> list[Proc]:
        """Live processes of the group ``pgid`` (a server's pid) and python stubs carrying
        this server's shm prefix (should one ever leave the group)."""
        prefix = self.launch.shm_prefix

        def own_stub(p: Proc) -> bool:
            return bool(p.argv) and Path(p.argv[0]).name == STUB and \
                any(a.startswith(prefix) for a in p.argv[1:])

        return [p for p in processes() if not p.zombie and (p.pgid == pgid or own_stub(p))]

    def reap(self, pgid: int) -> None:
        """SIGKILL what the server of group ``pgid`` left running and remove its shm regions;
        one log line when there was something. A restart reuses the prefix, so this must be
        over before the next ``start``: ``exit_code`` and ``stop`` wait for it."""
        killed = kill_and_wait(self.leftovers(pgid))
        regions = sorted(SHM.glob(f"{self.launch.shm_prefix}*"))
        for region in regions:
            region.unlink(missing_ok=True)
        if killed or regions:
            logger.warning("tritonserver %d left %d process(es) (pids %s) and %d shm region(s) "
                           "(%s*): removed", pgid, len(killed),
                           ", ".join(map(str, killed)) or "-", len(regions),
                           SHM / self.launch.shm_prefix)

    def log_tail(self, lines: int = 25) -> str:
        return log_tail(self.log_file, lines)

    def _failure(self, what: str) -> str:
        text = read_log(self.log_file)
        causes = sorted(set(re.findall(r"failed to load '([^']+)'[^:]*: (.*)", text)))
        reasons = "; ".join(f"{model}: {why.strip()[:300]}" for model, why in causes)
        return (f"{what}{': ' + reasons if reasons else ''}\n--- last lines of "
                f"{self.log_file}:\n{self.log_tail()}")
