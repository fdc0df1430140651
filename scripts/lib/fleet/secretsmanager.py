"""Secrets Manager's GetSecretValue, holding the secrets a template generates.

Reads swarm/aws/fleet.yaml and makes every AWS::SecretsManager::Secret of it
as CloudFormation would: GenerateSecretString's SecretStringTemplate with
GenerateStringKey set to PasswordLength random characters (letters and
digits when ExcludePunctuation, as the template asks). So a test of the
managed data mode reads the fields the template really writes, under the
keys the template really names; renaming one breaks the test.

Answers GetSecretValue (JSON 1.1, X-Amz-Target secretsmanager.GetSecretValue,
as the AWS CLI sends it) by ARN or name, for a request signed with the
expected access key (AccessDeniedException otherwise), and
ResourceNotFoundException for any other secret, as the real service does.

    secretsmanager.py HOST PORT TEMPLATE OUT-JSON ACCESS-KEY-ID

OUT-JSON gets {"LogicalId": {"arn": ..., "value": {...}}} for the test, which
sets the same passwords on the stand-in database and cache.
"""
import json
import re
import secrets
import string
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import yaml

HOST, PORT, TEMPLATE, OUT, ACCESS_KEY = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
REGION, ACCOUNT = "eu-west-1", "123456789012"


class Loader(yaml.SafeLoader):
    pass


# CloudFormation's short tags (!Ref, !Sub…) kept as plain values: only the
# secrets' literal properties are read here.
Loader.add_multi_constructor("!", lambda loader, suffix, node: None)


def generate(spec):
    alphabet = string.ascii_letters + string.digits
    if not spec.get("ExcludePunctuation"):
        alphabet += "!#$%()*+,-.:;<=>?[]^_{|}~"
    exclude = spec.get("ExcludeCharacters", "")
    alphabet = "".join(c for c in alphabet if c not in exclude)
    value = json.loads(spec.get("SecretStringTemplate", "{}"))
    value[spec["GenerateStringKey"]] = "".join(secrets.choice(alphabet) for _ in range(int(spec.get("PasswordLength", 32))))
    return value


def template_secrets():
    resources = yaml.load(open(TEMPLATE), Loader=Loader)["Resources"]
    made = {}
    for name, r in resources.items():
        if r["Type"] == "AWS::SecretsManager::Secret":
            arn = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:{name}-{secrets.token_hex(3)}"
            made[name] = {"arn": arn, "value": generate(r["Properties"]["GenerateSecretString"])}
    return made


SECRETS = template_secrets()
BY_ID = {s["arn"]: (name, s) for name, s in SECRETS.items()} | {name: (name, s) for name, s in SECRETS.items()}


class Handler(BaseHTTPRequestHandler):
    def answer(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        target = self.headers.get("X-Amz-Target", "")
        credential = re.search(r"Credential=([^/]+)/", self.headers.get("Authorization", ""))
        if not credential or credential.group(1) != ACCESS_KEY:
            return self.answer(400, {"__type": "AccessDeniedException", "message": "not signed by the expected key"})
        if target != "secretsmanager.GetSecretValue":
            return self.answer(400, {"__type": "InvalidAction", "message": f"{target} is not stood in for"})
        found = BY_ID.get(body.get("SecretId", ""))
        if not found:
            return self.answer(400, {"__type": "ResourceNotFoundException",
                                     "message": "Secrets Manager can't find the specified secret."})
        name, secret = found
        self.answer(200, {"ARN": secret["arn"], "Name": name, "VersionId": "v1",
                          "SecretString": json.dumps(secret["value"]), "VersionStages": ["AWSCURRENT"],
                          "CreatedDate": 1.7e9})

    def log_message(self, *args):
        pass


SERVER = ThreadingHTTPServer((HOST, PORT), Handler)  # bound first: OUT means "serving"
with open(OUT, "w") as f:
    json.dump(SECRETS, f)
SERVER.serve_forever()
