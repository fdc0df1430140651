"""cloud-init's part on a test node: applies user data as cloud-init would.

    cloud_init.py USER_DATA

Runs inside a node of scripts/e2e-fleet (its own network and mount
namespaces). Handles what the shipped user data uses: `packages` (checked
present in the node image: the test network has no package mirror, so a
missing one fails the boot here rather than being skipped), `write_files`
(content, permissions; parent folders made), and `runcmd` (each entry in
order: a list is run as it is, a string by sh; the first failure stops the
boot). Everything is logged, with times, to /var/log/cloud-init-output.log
and stdout. Anything else in the user data fails the boot: this stand-in
must never pretend to have applied what it does not understand.
"""
import os
import subprocess
import sys
import time

import yaml

LOG = "/var/log/cloud-init-output.log"
HANDLED = {"package_update", "packages", "write_files", "runcmd"}


def log(text):
    line = f"{time.strftime('%H:%M:%S')} cloud-init: {text}"
    print(line, flush=True)
    with open(LOG, "a") as f:
        f.write(line + "\n")


def packages(names):
    for name in names:
        found = subprocess.run(["dpkg-query", "-W", "-f=${Status}", name], capture_output=True, text=True)
        if "install ok installed" not in found.stdout:
            log(f"package {name} is not in the node image and there is no mirror to install it from")
            sys.exit(1)
        log(f"package {name}: installed")


def write_files(entries):
    for entry in entries:
        path = entry["path"]
        if entry.get("encoding") or entry.get("append") or entry.get("defer"):
            log(f"write_files {path}: encoding/append/defer are not handled by this stand-in")
            sys.exit(1)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(entry.get("content", ""))
        os.chmod(path, int(str(entry.get("permissions", "0644")), 8))
        log(f"wrote {path} ({entry.get('permissions', '0644')})")


def runcmd(commands):
    for number, cmd in enumerate(commands, 1):
        argv = cmd if isinstance(cmd, list) else ["sh", "-c", cmd]
        log(f"runcmd {number}: {' '.join(argv)}")
        with open(LOG, "a") as out:
            proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            for line in proc.stdout:  # as it comes, as cloud-init's log does
                sys.stdout.write(line)
                sys.stdout.flush()
                out.write(line)
                out.flush()
        if proc.wait() != 0:
            log(f"runcmd {number} failed with exit code {proc.returncode}")
            sys.exit(1)


def main(path):
    text = open(path).read()
    if not text.startswith("#cloud-config\n"):
        log("user data must start with #cloud-config")
        sys.exit(1)
    data = yaml.safe_load(text)
    unknown = set(data) - HANDLED
    if unknown:
        log(f"user data uses {sorted(unknown)}, which this stand-in does not apply")
        sys.exit(1)
    os.makedirs(os.path.dirname(LOG), exist_ok=True)
    started = time.time()
    if data.get("package_update"):
        log("package_update: skipped (no package mirror in the test network; the node image is current)")
    packages(data.get("packages", []))
    write_files(data.get("write_files", []))
    runcmd(data.get("runcmd", []))
    log(f"finished in {time.time() - started:.1f}s")


main(sys.argv[1])
