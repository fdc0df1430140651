#!/usr/bin/env python3
# shellcheck disable=SC1071 # Python, not shell: this tells tools that run shellcheck over every script
"""Proves that scripts/check-fleet-template can fail: breaks swarm/aws/fleet.yaml
one way at a time (each breaking one of the fleet's AWS rules that the check
enforces) into a temporary copy and expects the check to refuse every copy.
Run by scripts/check-swarm-files."""
import pathlib
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[2]
src = (ROOT / "swarm/aws/fleet.yaml").read_text()
muts = [
 ("HttpTokens required -> optional", "HttpTokens: required", "HttpTokens: optional"),
 ("hop limit 1 -> 2", "HttpPutResponseHopLimit: 1", "HttpPutResponseHopLimit: 2"),
 ("hook TERMINATING -> LAUNCHING", "autoscaling:EC2_INSTANCE_TERMINATING", "autoscaling:EC2_INSTANCE_LAUNCHING"),
 ("managers' hook removed", "        - LifecycleHookName: !Sub ${AWS::StackName}-manager-drain\n          LifecycleTransition: autoscaling:EC2_INSTANCE_TERMINATING\n", "        - LifecycleHookName: !Sub ${AWS::StackName}-manager-drain\n          LifecycleTransition: autoscaling:EC2_INSTANCE_LAUNCHING\n"),
 ("two managers", 'MinSize: "3"\n      MaxSize: "3"\n      DesiredCapacity: "3"', 'MinSize: "2"\n      MaxSize: "3"\n      DesiredCapacity: "2"'),
 ("managers rolled two at a time", "        MaxBatchSize: 1\n        MinInstancesInService: 2\n", "        MaxBatchSize: 2\n        MinInstancesInService: 1\n"),
 ("managers pinned to version 1", "        Version: !GetAtt ManagerLaunchTemplate.LatestVersionNumber", '        Version: "1"'),
 ("managers joined without the founding", "--join-if-founded", "--join-if-absent"),
 ("hook DefaultResult ABANDON", "DefaultResult: CONTINUE", "DefaultResult: ABANDON"),
 ("high alarm 70 -> 80", "Threshold: 70", "Threshold: 80"),
 ("low alarm 30 -> 20", "Threshold: 30", "Threshold: 20"),
 ("scale-in cooldown removed", '      Cooldown: "600"\n', ""),
 ("2377 from 0.0.0.0/0", "      SourceSecurityGroupId: !Ref NodeSecurityGroup\n      IpProtocol: tcp\n      FromPort: 2377", "      CidrIp: 0.0.0.0/0\n      IpProtocol: tcp\n      FromPort: 2377"),
 ("4789 opened on managers' SG", "      GroupId: !Ref NodeSecurityGroup\n      SourceSecurityGroupId: !Ref NodeSecurityGroup\n      IpProtocol: udp\n      FromPort: 4789", "      GroupId: !Ref ManagerSecurityGroup\n      SourceSecurityGroupId: !Ref NodeSecurityGroup\n      IpProtocol: udp\n      FromPort: 4789"),
 ("7946/udp rule removed", "      IpProtocol: udp\n      FromPort: 7946\n      ToPort: 7946\n", "      IpProtocol: udp\n      FromPort: 7947\n      ToPort: 7947\n"),
 ("proxy 8080 from the nodes, not the ALB", "      SourceSecurityGroupId: !Ref LoadBalancerSecurityGroup\n      IpProtocol: tcp\n      FromPort: 8080", "      SourceSecurityGroupId: !Ref NodeSecurityGroup\n      IpProtocol: tcp\n      FromPort: 8080"),
 ("ASG in one subnet", "        - [!Ref SubnetA, !Ref SubnetB]\n      MinSize", "        - [!Ref SubnetA]\n      MinSize"),
 ("managers' user data drifts (drain delay)", "              SWARM_AGENT_LB_DRAIN_DELAY=30s", "              SWARM_AGENT_LB_DRAIN_DELAY=20s"),
 ("worker user data: another hook name", "SWARM_AGENT_LIFECYCLE_HOOK=${AWS::StackName}-drain", "SWARM_AGENT_LIFECYCLE_HOOK=${AWS::StackName}-drain2"),
 ("managers' bootstrap-manager.sh drifts", "log \"initialising the swarm", "log \"initialising the Swarm"),
 ("deregistration delay 60", 'deregistration_delay.timeout_seconds, Value: "30"', 'deregistration_delay.timeout_seconds, Value: "60"'),
 ("access logs never on", 'Value: !If [HasAccessLogs, "true", "false"]', 'Value: "false"'),
 ("invalid header fields passed on", 'drop_invalid_header_fields.enabled, Value: "true"', 'drop_invalid_header_fields.enabled, Value: "false"'),
 ("health check path /healthz", "HealthCheckPath: /lb-health", "HealthCheckPath: /healthz"),
 ("health check port 8080", 'HealthCheckPort: "9465"', 'HealthCheckPort: "8080"'),
 ("manager may DeleteParameter", "Action: [ssm:GetParameter, ssm:PutParameter]", "Action: [ssm:GetParameter, ssm:PutParameter, ssm:DeleteParameter]"),
 ("worker may read manager-token", "parameter${TokenStorePrefix}/${AWS::StackName}/worker-token", "parameter${TokenStorePrefix}/${AWS::StackName}/manager-token"),
 ("the managers' group follows the load balancer", "HealthCheckType: EC2", "HealthCheckType: ELB"),
 ("the workers' group replaces nodes when the shop is down", "      HealthCheckType: EC2\n      # Longer than", "      HealthCheckType: ELB\n      # Longer than"),
 ("stacks share one token store", "parameter${TokenStorePrefix}/${AWS::StackName}/*", "parameter${TokenStorePrefix}/*"),
 ("workers not gated on the founding", "    DependsOn: SwarmFounded\n", ""),
 ("SSH default 0.0.0.0/0 allowed", "AllowedPattern: '^(\\d{1,3}\\.\\d{1,3}\\.\\d{1,3}\\.\\d{1,3}/(3[0-2]|[12]\\d|[89]))?$'", "AllowedPattern: '^.*$'"),
 ("9465 from anywhere in the VPC", "      SourceSecurityGroupId: !Ref LoadBalancerSecurityGroup\n      IpProtocol: tcp\n      FromPort: 9465", "      CidrIp: 10.0.0.0/8\n      IpProtocol: tcp\n      FromPort: 9465"),
 ("health check too slow for the drain delay", "HealthCheckIntervalSeconds: 10", "HealthCheckIntervalSeconds: 30"),
 ("a worker never ready goes in service", "${AWS::StackName}-ready\n          LifecycleTransition: autoscaling:EC2_INSTANCE_LAUNCHING\n          HeartbeatTimeout: 900\n          DefaultResult: ABANDON", "${AWS::StackName}-ready\n          LifecycleTransition: autoscaling:EC2_INSTANCE_LAUNCHING\n          HeartbeatTimeout: 900\n          DefaultResult: CONTINUE"),
 ("managers without a launch hook", "-manager-ready\n          LifecycleTransition: autoscaling:EC2_INSTANCE_LAUNCHING", "-manager-ready\n          LifecycleTransition: autoscaling:EC2_INSTANCE_TERMINATING"),
 ("launch hook times out before the agent gives up", "HeartbeatTimeout: 900", "HeartbeatTimeout: 600"),
 ("workers' agent not told the launch hook", "SWARM_AGENT_LAUNCH_HOOK=${AWS::StackName}-ready\n", ""),
 ("container logs kept on the node", '"log-driver": "awslogs"', '"log-driver": "json-file"'),
 ("log group without retention", "      RetentionInDays: !Ref LogRetentionDays\n", ""),
 ("nodes may not write the log group", "log-group:${AWS::StackName}/containers:*", "log-group:${AWS::StackName}/other:*"),
 ("backups deleted with the stack", "    DeletionPolicy: Retain\n    UpdateReplacePolicy: Retain\n", ""),
 ("backup bucket open to public policies", "        RestrictPublicBuckets: true", "        RestrictPublicBuckets: false"),
 ("backup bucket without versioning", "VersioningConfiguration: {Status: Enabled}", "VersioningConfiguration: {Status: Suspended}"),
 ("backup role may delete dumps", "Action: [s3:PutObject, s3:GetObject]", "Action: [s3:PutObject, s3:GetObject, s3:DeleteObject]"),
 ("managers may assume any role", "role/${AWS::StackName}-backup/*", "role/*"),
 ("managers' agents not told the backup role", " --set 'SWARM_AGENT_BACKUP_ROLE_ARN=${BackupRole.Arn}'", ""),
 ("data volume deleted with the stack", "    DeletionPolicy: Snapshot\n    UpdateReplacePolicy: Snapshot\n    Properties:\n      AvailabilityZone", "    DeletionPolicy: Delete\n    UpdateReplacePolicy: Snapshot\n    Properties:\n      AvailabilityZone"),
 ("data volume unencrypted", "      VolumeType: gp3\n      Encrypted: true", "      VolumeType: gp3\n      Encrypted: false"),
 ("data volume in SubnetB's zone", "      AvailabilityZone: !Ref SubnetAZone", "      AvailabilityZone: us-east-1b"),
 ("snapshots target another tag", "        TargetTags:\n          - {Key: bookstore:data,", "        TargetTags:\n          - {Key: bookstore:other,"),
 ("managers may attach any volume", ":volume/${DataVolume}", ":volume/*"),
 ("SubnetAZone unchecked", "!ValueOf [SubnetA, AvailabilityZone]", "!ValueOf [SubnetB, AvailabilityZone]"),
 ("managers' bootstrap not told the data volume", "DataVolumeArg: !If [InSwarmData, !Ref DataVolume, \"\"]", "DataVolumeArg: \"\""),
 ("managers' bootstrap not told the database's secret", "DatabaseSecretArg: !If [ManagedData, !Ref DatabaseSecret, \"\"]", "DatabaseSecretArg: \"\""),
 ("data volume in both modes", "    Type: AWS::EC2::Volume\n    Condition: InSwarmData\n", "    Type: AWS::EC2::Volume\n"),
 ("database in one zone", "      MultiAZ: true", "      MultiAZ: false"),
 ("database unencrypted", "      StorageEncrypted: true", "      StorageEncrypted: false"),
 ("database public", "      PubliclyAccessible: false", "      PubliclyAccessible: true"),
 ("database deletable", "      DeletionProtection: true", "      DeletionProtection: false"),
 ("database deleted with the stack", "    DeletionPolicy: Snapshot\n    UpdateReplacePolicy: Snapshot\n    Metadata:\n      # A major", "    DeletionPolicy: Delete\n    UpdateReplacePolicy: Snapshot\n    Metadata:\n      # A major"),
 ("no point-in-time recovery possible", "    MinValue: 1\n    MaxValue: 35", "    MinValue: 0\n    MaxValue: 35"),
 ("database accepts plain text", 'require_secure_transport: "1"', 'require_secure_transport: "0"'),
 ("MySQL from anywhere", "FromPort: 3306, ToPort: 3306, SourceSecurityGroupId: !Ref NodeSecurityGroup", "FromPort: 3306, ToPort: 3306, CidrIp: 10.0.0.0/8"),
 ("cache without TLS", "      TransitEncryptionEnabled: true", "      TransitEncryptionEnabled: false"),
 ("cache evicts sessions", "maxmemory-policy: noeviction", "maxmemory-policy: allkeys-lru"),
 ("database password with punctuation", "        GenerateStringKey: password\n        PasswordLength: 32\n        ExcludePunctuation: true", "        GenerateStringKey: password\n        PasswordLength: 32\n        ExcludePunctuation: false"),
 ("cache token under another key", "        GenerateStringKey: token", "        GenerateStringKey: auth"),
 ("managers may read any secret", "Resource: [!Ref DatabaseSecret, !Ref CacheSecret]", "Resource: \"*\""),
]
bad = []
with tempfile.TemporaryDirectory() as tmp:
    broken = pathlib.Path(tmp) / "fleet.yaml"
    for what, old, new in muts:
        if old not in src:
            bad.append(f"mutation no longer applies (update this list): {what}")
            continue
        broken.write_text(src.replace(old, new, 1))
        r = subprocess.run([str(ROOT / "scripts/check-fleet-template"), str(broken)], capture_output=True, text=True)
        reason = next((line.strip()[2:] for line in r.stderr.splitlines() if line.startswith("  - ")), r.stderr.strip()[-200:])
        if r.returncode == 0:
            bad.append(f"check-fleet-template accepted a template with: {what}")
        else:
            print(f"  refused ({what}): {reason[:140]}")
if bad:
    sys.exit("\n".join(bad))
print(f"check-fleet-template refused all {len(muts)} broken templates")
