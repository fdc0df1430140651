"""The load balancer's part in scripts/e2e-fleet: an ALB target group.

    alb.py REGISTERED_FILE TARGETS_FILE LOG_FILE

REGISTERED_FILE lists the addresses of the instances attached to the target
group (the test adds a node when the Auto Scaling group would attach it and
removes it when the instance is gone). Like the ALB health check of
swarm/README.md, each is checked at http://IP:9465/lb-health every 2 s
(timeout 2 s); 2 successes make it healthy, 2 failures unhealthy. The
healthy ones are written as http://IP:8080 to TARGETS_FILE, where the load
generator (examples/loadgen.rs --targets-file) sends traffic. Transitions
are logged with times.
"""
import os
import sys
import time
import urllib.request

REGISTERED, TARGETS, LOG = sys.argv[1:4]
INTERVAL, THRESHOLD = 2.0, 2
state = {}  # ip -> [healthy, consecutive results of the other kind]


def log(text):
    with open(LOG, "a") as f:
        f.write(f"{time.time():.1f} {text}\n")


def check(ip):
    try:
        with urllib.request.urlopen(f"http://{ip}:9465/lb-health", timeout=2) as r:
            return r.status == 200
    except Exception:
        return False


def registered():
    try:
        return [l.strip() for l in open(REGISTERED) if l.strip()]
    except FileNotFoundError:
        return []


while True:
    ips = registered()
    for ip in list(state):
        if ip not in ips:
            del state[ip]
            log(f"{ip} deregistered")
    for ip in ips:
        healthy, streak = state.setdefault(ip, [False, 0])
        ok = check(ip)
        streak = streak + 1 if ok != healthy else 0
        if streak >= THRESHOLD:
            healthy, streak = ok, 0
            log(f"{ip} {'healthy' if ok else 'unhealthy'}")
        state[ip] = [healthy, streak]
    tmp = TARGETS + ".tmp"
    with open(tmp, "w") as f:
        f.writelines(f"http://{ip}:8080\n" for ip, (healthy, _) in sorted(state.items()) if healthy)
    os.replace(tmp, TARGETS)
    time.sleep(INTERVAL)
