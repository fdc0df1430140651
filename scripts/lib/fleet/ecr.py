#!/usr/bin/env python3
# shellcheck disable=SC1071 # Python, not shell: this tells tools that run shellcheck over every script
"""ECR's part in the fleet test: the registry's password and the API that hands it out.

An ECR registry accepts `AWS` with a password that GetAuthorizationToken
returns and that dies 12 hours later. The test registry (Debian's
docker-registry) checks an htpasswd file; this stand-in owns that file and
answers GetAuthorizationToken (AWS JSON 1.1 protocol, as the SDK and the
credential helper send it) with the current password and the registry's
ECR-shaped address as proxyEndpoint. `POST /rotate` replaces the password at
once, standing in for the expiry: from then on every auth stored with the old
one is refused, as a 12-hour-old ECR token is.

    ecr.py HOST PORT HTPASSWD_FILE REGISTRY_HOST CALLS_FILE
"""
import base64
import json
import os
import secrets
import sys
import time
import warnings
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

with warnings.catch_warnings():  # deprecated in 3.11, still there; no package needed for bcrypt
    warnings.simplefilter("ignore", DeprecationWarning)
    import crypt  # bcrypt ($2b$), the only hash the registry's htpasswd accepts
HOST, PORT, HTPASSWD, REGISTRY_HOST, CALLS = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
TOKEN_LIFE = 12 * 3600
TARGET = "AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken"
state = {"password": "", "generation": 0}


def rotate():
    state["password"] = secrets.token_urlsafe(24)
    state["generation"] += 1
    line = "AWS:" + crypt.crypt(state["password"], crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=1 << 5)) + "\n"
    tmp = HTPASSWD + ".tmp"
    with open(tmp, "w") as f:
        f.write(line)
    os.replace(tmp, HTPASSWD)


class Handler(BaseHTTPRequestHandler):
    def reply(self, code, obj, content_type="application/x-amz-json-1.1"):
        data = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path == "/rotate":
            rotate()
            return self.reply(200, {"generation": state["generation"]}, "application/json")
        if self.headers.get("X-Amz-Target") != TARGET:
            return self.reply(400, {"__type": "UnknownOperationException",
                                    "message": f"{self.headers.get('X-Amz-Target')} is not stood in for"})
        with open(CALLS, "a") as f:
            f.write(json.dumps({"at": time.time(), "generation": state["generation"],
                                "from": self.client_address[0]}) + "\n")
        token = base64.b64encode(f"AWS:{state['password']}".encode()).decode()
        self.reply(200, {"authorizationData": [{
            "authorizationToken": token,
            "expiresAt": time.time() + TOKEN_LIFE,
            "proxyEndpoint": f"https://{REGISTRY_HOST}",
        }]})

    def do_GET(self):
        self.reply(200, {"generation": state["generation"]}, "application/json")

    def log_message(self, *args):
        pass


rotate()
ThreadingHTTPServer((HOST, PORT), Handler).serve_forever()
