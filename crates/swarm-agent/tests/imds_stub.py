"""A stand-in for the EC2 instance metadata service (IMDSv2 only), for tests.

Usage: imds_stub.py HOST PORT. Serves a session token on PUT /latest/api/token
(TTL header required, as on EC2) and metadata only to requests carrying it.
"""
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer

TOKEN = "stub-session-token"
DATA = {
    "/latest/meta-data/placement/availability-zone": "eu-test-1b",
    "/latest/meta-data/instance-id": "i-0123456789abcdef0",
    "/latest/meta-data/instance-type": "t3.small",
    "/latest/meta-data/instance-life-cycle": "spot",
}


class Handler(BaseHTTPRequestHandler):
    def reply(self, code, body):
        data = body.encode()
        self.send_response(code)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_PUT(self):
        if self.path == "/latest/api/token" and self.headers.get("X-aws-ec2-metadata-token-ttl-seconds"):
            self.reply(200, TOKEN)
        else:
            self.reply(400, "missing TTL header")

    def do_GET(self):
        if self.headers.get("X-aws-ec2-metadata-token") != TOKEN:
            self.reply(401, "IMDSv2 token required")
        elif self.path in DATA:
            self.reply(200, DATA[self.path])
        else:
            self.reply(404, "not found")

    def log_message(self, *args):
        pass


HTTPServer((sys.argv[1], int(sys.argv[2])), Handler).serve_forever()
