"""A local cluster: LLM_CLUSTER_REPLICAS replicas of the server (default 2) on loopback ports from
LLM_INFERENCE_PORT (default 8091) up, behind nginx (Debian's package) on LLM_CLUSTER_PORT (default 8090),
configured by deploy/nginx/llm-inference-api.conf. Ctrl-C or SIGTERM stops all of it, the replicas
draining. LLM_CLUSTER_DIR (default: a new temporary directory) holds the logs, the rendered nginx
configuration and cluster.json (ports, pids, log paths).

    make cluster
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.processes import HOST, stop, wait_ready  # noqa: E402

SITE = ROOT / "deploy" / "nginx" / "llm-inference-api.conf"
OLLAMA_SITE = ROOT / "deploy" / "nginx" / "ollama-port.conf"
EMBEDDED = "HuggingFaceTB/SmolLM2-135M-Instruct"
NGINX_MAIN = """worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/nginx-error.log;
events {{ worker_connections 1024; }}
http {{
    client_body_temp_path {dir}/tmp/body;
    proxy_temp_path {dir}/tmp/proxy;
    fastcgi_temp_path {dir}/tmp/fastcgi;
    uwsgi_temp_path {dir}/tmp/uwsgi;
    scgi_temp_path {dir}/tmp/scgi;
    include {dir}/site.conf;
    include {dir}/ollama-site.conf;
}}
"""


def render_site(site: str, listen: int, access_log: Path) -> str:
    """The shipped site file with this cluster's listen port and access log."""
    site = re.sub(r"listen \d+;", f"listen {HOST}:{listen};", site, count=1)
    return re.sub(r"access_log \S+ ", f"access_log {access_log} ", site, count=1)


def upstreams(ports: list[int]) -> str:
    return "".join(f"server {HOST}:{port} max_fails=1 fail_timeout=2s;\n" for port in ports)


def integer(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    return int(raw) if raw else default


def main() -> int:
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if nginx is None:
        sys.stderr.write("nginx is not installed: apt-get install nginx (make cluster does, as root)\n")
        return 1
    replicas = integer("LLM_CLUSTER_REPLICAS", 2)
    listen = integer("LLM_CLUSTER_PORT", 8090)
    ollama_port = integer("LLM_CLUSTER_OLLAMA_PORT", 0)  # 11434 for tools hard-wired to Ollama's port
    first = integer("LLM_INFERENCE_PORT", 8091)
    directory = Path(os.environ.get("LLM_CLUSTER_DIR") or tempfile.mkdtemp(prefix="llm-cluster-"))
    for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (directory / "tmp" / sub).mkdir(parents=True, exist_ok=True, mode=0o777)
        os.chmod(directory / "tmp" / sub, 0o777)  # nginx's workers may run as another user
    ports = [first + i for i in range(replicas)]
    # Each engine spreads its matmuls over every core and spins while it waits for them: engines in
    # several processes on the same cores stall one another (measured: an 8-token answer took 77 s
    # instead of 0.3 s with two busy replicas on 2 cores). Each replica gets its share of the cores.
    threads = str(max(1, (os.cpu_count() or 1) // replicas))
    processes: list[subprocess.Popen] = []
    state: dict = {"replicas": [], "nginx": {}}
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    try:
        for number, port in enumerate(ports, 1):
            log = directory / f"replica-{number}.log"
            env = {
                **os.environ,
                "LLM_ALLOWED_MODELS": os.environ.get("LLM_ALLOWED_MODELS") or EMBEDDED,
                "LLM_INFERENCE_HOSTNAME": HOST,
                "LLM_INFERENCE_PORT": str(port),
                # one host: the replicas share its SQLite store, unless LLM_DATABASE_URL names PostgreSQL
                "LLM_DATA_DIR": os.environ.get("LLM_DATA_DIR") or str(directory / "data"),
                "LLM_TRUSTED_PROXIES": os.environ.get("LLM_TRUSTED_PROXIES") or HOST,
                "RAYON_NUM_THREADS": os.environ.get("RAYON_NUM_THREADS") or threads,
            }
            command = [str(Path(sys.executable).parent / "gunicorn"), "-c", "gunicorn.conf.py", "wsgi:app"]
            with log.open("wb") as output:
                process = subprocess.Popen(
                    command,
                    cwd=ROOT,
                    env=env,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            processes.append(process)
            state["replicas"].append({"port": port, "pid": process.pid, "log": str(log)})
        for process, replica in zip(processes, state["replicas"], strict=True):
            wait_ready(process, replica["port"], "/health/ready", Path(replica["log"]), 300, "a replica")
        access_log = directory / "nginx-access.log"
        (directory / "site.conf").write_text(render_site(SITE.read_text(), listen, access_log))
        ollama_site = render_site(OLLAMA_SITE.read_text(), ollama_port, access_log) if ollama_port else ""
        (directory / "ollama-site.conf").write_text(ollama_site)
        (directory / "llm-inference-api.upstreams").write_text(upstreams(ports))
        (directory / "nginx.conf").write_text(NGINX_MAIN.format(dir=directory))
        with (directory / "nginx.out").open("wb") as output:
            proxy = subprocess.Popen(
                [nginx, "-p", str(directory), "-c", str(directory / "nginx.conf"), "-g", "daemon off;"],
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        processes.append(proxy)
        wait_ready(proxy, listen, "/health/live", directory / "nginx-error.log", 30, "nginx")
        state["nginx"] = {"port": listen, "pid": proxy.pid, "access_log": str(access_log)}
        if ollama_port:
            wait_ready(proxy, ollama_port, "/", directory / "nginx-error.log", 30, "nginx (Ollama's port)")
            state["nginx"]["ollama_port"] = ollama_port
        (directory / "cluster.json").write_text(json.dumps(state, indent=2))
        replica_ports = ", ".join(map(str, ports))
        print(f"cluster ready: http://{HOST}:{listen} -> replicas on {replica_ports}; logs in {directory}")
        sys.stdout.flush()
        done.wait()
    finally:
        replicas_only = processes[:replicas]
        for process in replicas_only:  # all drain at once
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in replicas_only:
            stop(process, grace=60)
        for process in processes[replicas:]:
            if process.poll() is None:
                process.send_signal(signal.SIGQUIT)  # nginx: graceful shutdown
            stop(process, grace=15)
    return 0


if __name__ == "__main__":
    sys.exit(main())
