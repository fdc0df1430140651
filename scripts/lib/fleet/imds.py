"""The EC2 instance metadata service (IMDSv2 only) of every test node at once:
the one stand-in of it, for the fleet test (scripts/e2e-fleet) and the
agent's engine test (crates/swarm-agent/tests).

Listens on 169.254.169.254:80 in the fleet's test network, as EC2's does on
every instance (or on LISTEN_PORT where a test says), and answers each node
by its source address: its own instance id, zone, lifecycle and, when the
test says so, a scale-in or spot notice. Serves instance-profile credentials
too, so the agent's AWS SDK finds credentials as it would on EC2 (moto and
the Auto Scaling stub accept any).

    imds.py LISTEN_HOST CONTROL_HOST CONTROL_PORT NODES_JSON [LISTEN_PORT]

Control API (for the test only, on CONTROL_HOST:CONTROL_PORT):
    PUT /nodes/<ip>            JSON object merged into that node's metadata
    GET /nodes                 every node's metadata
Metadata keys: instance-id, zone, lifecycle, target-lifecycle-state (default
InService), spot-action (JSON text or absent), rebalance (JSON text or absent).
"""
import json
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LISTEN, CONTROL_HOST, CONTROL_PORT, NODES_FILE = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
LISTEN_PORT = int(sys.argv[5]) if len(sys.argv) > 5 else 80
NODES = json.load(open(NODES_FILE))
TOKENS = {}
LOCK = threading.Lock()
ROLE = "bookstore-fleet-node"


def metadata(node, path):
    fields = {
        "instance-id": node.get("instance-id"),
        "instance-type": node.get("instance-type", "t3.small"),
        "instance-life-cycle": node.get("lifecycle", "on-demand"),
        "placement/availability-zone": node.get("zone"),
        "placement/region": "eu-west-1",
        "autoscaling/target-lifecycle-state": node.get("target-lifecycle-state", "InService"),
        "spot/instance-action": node.get("spot-action"),
        "events/recommendations/rebalance": node.get("rebalance"),
        "iam/security-credentials/": ROLE,
        "iam/security-credentials/" + ROLE: json.dumps({
            "Code": "Success",
            "LastUpdated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "Type": "AWS-HMAC",
            "AccessKeyId": "ASIATESTFLEETNODE",
            "SecretAccessKey": "test-secret-key",
            "Token": "test-session-token",
            "Expiration": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 6 * 3600)),
        }),
    }
    return fields.get(path)


class Metadata(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def reply(self, code, body, headers=()):
        data = body.encode()
        self.send_response(code)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def node(self):
        with LOCK:
            return dict(NODES.get(self.client_address[0], {}))

    def do_PUT(self):
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        if self.path != "/latest/api/token" or not self.headers.get("X-aws-ec2-metadata-token-ttl-seconds"):
            return self.reply(400, "IMDSv2: PUT /latest/api/token with a TTL header")
        token = uuid.uuid4().hex
        TOKENS[token] = self.client_address[0]
        # As EC2 does; the AWS SDKs refuse a token without it.
        ttl = self.headers["X-aws-ec2-metadata-token-ttl-seconds"]
        self.reply(200, token, [("X-aws-ec2-metadata-token-ttl-seconds", ttl)])

    def do_GET(self):
        if TOKENS.get(self.headers.get("X-aws-ec2-metadata-token", "")) != self.client_address[0]:
            return self.reply(401, "IMDSv2 session token required")
        node = self.node()
        if not node:
            return self.reply(404, "unknown instance")
        prefix = "/latest/meta-data/"
        value = metadata(node, self.path[len(prefix):]) if self.path.startswith(prefix) else None
        if value is None:
            return self.reply(404, "Not Found")
        self.reply(200, value)

    def log_message(self, *args):
        pass


class Control(BaseHTTPRequestHandler):
    def reply(self, code, obj):
        data = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_PUT(self):
        ip = self.path.rsplit("/", 1)[-1]
        change = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or "{}")
        with LOCK:
            node = NODES.setdefault(ip, {})
            for key, value in change.items():
                if value is None:
                    node.pop(key, None)
                else:
                    node[key] = value
            self.reply(200, node)

    def do_GET(self):
        with LOCK:
            self.reply(200, NODES)

    def log_message(self, *args):
        pass


threading.Thread(target=ThreadingHTTPServer((CONTROL_HOST, CONTROL_PORT), Control).serve_forever, daemon=True).start()
ThreadingHTTPServer((LISTEN, LISTEN_PORT), Metadata).serve_forever()
