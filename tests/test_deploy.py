"""The README's AWS walkthrough, offline: moto on loopback stands in for AWS,
the execution role is created from aws/ as aws/HOWTO.md says, and the real
`zappa` CLI (from the lean virtualenv) deploys, inspects, updates, tails and
undeploys the relay with the project's own zappa_settings.json.

The steps run in file order and share one emulator; each checks with boto3
what AWS would hold afterwards. A broken zappa_settings.json (wrong
app_function, role name, runtime...) fails here.
"""
import fnmatch
import json
import re
import shutil
import time
import uuid

import pytest

from tests import ctim_check
from tests import lambda_env as L

SETTINGS = L.load_settings()[L.STAGE]
FUNCTION = f"{SETTINGS['project_name']}-{L.STAGE}"
REGION = SETTINGS["aws_region"]
ROLE = SETTINGS["role_name"]
ROLE_ARN = f"arn:aws:iam::{L.ACCOUNT_ID}:role/{ROLE}"
FUNCTION_ARN = f"arn:aws:lambda:{REGION}:{L.ACCOUNT_ID}:function:{FUNCTION}"
AWS_DIR = L.REPO / "aws"
RELAY_VARIABLES = {"SECRET_KEY", "API_URL", "CTR_ENTITIES_LIMIT", "RELAY_PROVIDER"}


def _ingress_lockdown():
    """The zappa_settings keys aws/XdrIngress.md tells users to add (its JSON block)."""
    text = (AWS_DIR / "XdrIngress.md").read_text()
    return json.loads(re.search(r"```json\n(.*?)```", text, re.S).group(1))


# The cycle deploys `dev` locked down as aws/XdrIngress.md says (opt-in for users).
LOCKDOWN = _ingress_lockdown()


class World:
    """State shared by the ordered steps of the cycle."""

    def __init__(self, moto, home, env, settings_file):
        self.moto = moto
        self.home = home
        self.env = env
        self.settings_file = settings_file
        self.calls = {}       # zappa command -> [(service, operation, method, path)]
        self.seconds = {}     # zappa command -> duration
        self.code_sha = None
        self.api_id = None
        self.templates = []

    def zappa(self, *args, settings_file=None):
        """Run `zappa <args> -s <offline settings>`, recording its AWS calls."""
        self.moto.operations.clear()
        started = time.perf_counter()
        done = L.zappa(list(args), self.env, settings_file or self.settings_file)
        key = " ".join(args)
        self.seconds[key] = self.seconds.get(key, 0) + time.perf_counter() - started
        self.calls.setdefault(key, []).extend(self.moto.operations)
        return done

    def client(self, service):
        return self.moto.client(service, REGION)


@pytest.fixture(scope="module")
def world():
    started = time.perf_counter()
    L.ensure_lambda_venv()
    moto = L.MotoServer().start()
    home = L.tmpfs_home("relay-deploy-")
    try:
        env = L.aws_env(home, moto.url, region=REGION)
        settings = L.load_settings()
        settings[L.STAGE].update(LOCKDOWN)
        state = World(moto, home, env, L.write_test_settings(home, settings))
        yield state
        total = sum(state.seconds.values())
        print(f"\nzappa commands: {total:.1f} s; whole cycle incl. setup "
              f"{time.perf_counter() - started:.1f} s; "
              + ", ".join(f"{k}: {v:.1f} s" for k, v in state.seconds.items()))
    finally:
        moto.stop()
        shutil.rmtree(home, ignore_errors=True)
        for stray in L.REPO.glob(f"{FUNCTION}-*.zip"):  # left by an interrupted deploy
            stray.unlink()


def _output(done):
    return done.stdout + done.stderr


def _assert_function_as_configured(world):
    lam = world.client("lambda")
    conf = lam.get_function(FunctionName=FUNCTION)["Configuration"]
    assert conf["Handler"] == "handler.lambda_handler"
    assert conf["Runtime"] == SETTINGS["runtime"]
    assert conf["MemorySize"] == SETTINGS["memory_size"]
    assert conf["Timeout"] == SETTINGS["timeout_seconds"]
    assert conf["Timeout"] < 29, "API Gateway cuts requests at 29 s"
    assert conf["Role"] == ROLE_ARN
    variables = conf.get("Environment", {}).get("Variables", {})
    assert not RELAY_VARIABLES & set(variables), "secrets belong in the console, not the deploy"
    return conf


def _assert_ingress_locked_down(world):
    """Reserved concurrency on the function, the XDR-only resource policy on the
    REST API (moto drops `Policy` from the API object it creates from the stack,
    so it is read from the stack's template, as CloudFormation applies it)."""
    concurrency = world.client("lambda").get_function_concurrency(FunctionName=FUNCTION)
    assert concurrency["ReservedConcurrentExecutions"] == LOCKDOWN["lambda_concurrency"]
    template = world.client("cloudformation").get_template(StackName=FUNCTION)["TemplateBody"]
    template = template if isinstance(template, dict) else json.loads(template)
    apis = [r["Properties"] for r in template["Resources"].values()
            if r["Type"] == "AWS::ApiGateway::RestApi"]
    expected = json.loads((L.REPO / LOCKDOWN["apigateway_policy"]).read_text())
    assert apis and all(api.get("Policy") == expected for api in apis), apis


# --- 0. the one-time AWS setup of aws/HOWTO.md ---------------------------------------

def _howto_commands(verb):
    """The `aws iam <verb> ...` commands of aws/HOWTO.md, as {--option: value}."""
    text = (AWS_DIR / "HOWTO.md").read_text().replace("\\\n", " ")
    commands = []
    for line in text.splitlines():
        words = line.split()
        if words[:3] == ["aws", "iam", verb]:
            commands.append(dict(zip(words[3::2], words[4::2])))
    return commands


# aws/HOWTO.md step 2's placeholders -> this deployment's values.
PLACEHOLDERS = {"<ACCOUNT_ID>": L.ACCOUNT_ID, "<REGION>": REGION,
                "<FUNCTION_NAME>": FUNCTION, "<BUCKET>": SETTINGS["s3_bucket"],
                "<VPC_ID>": "vpc-0a1b2c3d4e5f67890",   # HOWTO step 7 (stage `vpc`)
                "<CACHE_TABLE>": "tr-intel-relay-cache"}   # aws/DynamoDB.md


def _filled(name):
    """aws/<name> with its placeholders filled, as HOWTO step 2 leaves it in build/aws/."""
    text = (AWS_DIR / name).read_text()
    for placeholder, value in PLACEHOLDERS.items():
        text = text.replace(placeholder, value)
    assert not re.search(r"<[A-Z_]+>", text), (name, re.findall(r"<[A-Z_]+>", text))
    return text


def _file_argument(value):
    assert value.startswith("file://build/aws/"), value
    return _filled(value[len("file://build/aws/"):])


def test_00_howto_fills_every_placeholder_with_the_settings():
    text = (AWS_DIR / "HOWTO.md").read_text()
    filled = dict(re.findall(r'-e "s/(<[A-Z_]+>)/([^/"]+)/g"', text))
    used = {p for f in AWS_DIR.glob("*.json") for p in re.findall(r"<[A-Z_]+>", f.read_text())}
    assert used <= set(filled), used - set(filled)
    assert set(PLACEHOLDERS) <= set(filled)
    for placeholder, value in filled.items():
        if not value.startswith("$"):
            assert value == PLACEHOLDERS[placeholder], (placeholder, value)


def test_00_execution_role_from_howto(world):
    """Create the execution role with aws/HOWTO.md's own commands; the role
    name comes from the docs, so a zappa_settings.json naming another role
    fails the deploy below."""
    iam = world.client("iam")
    created = _howto_commands("create-role")
    assert len(created) == 1
    for options in created:
        iam.create_role(RoleName=options["--role-name"], AssumeRolePolicyDocument=_file_argument(
            options["--assume-role-policy-document"]))
    for options in _howto_commands("put-role-policy"):
        iam.put_role_policy(RoleName=options["--role-name"],
                            PolicyName=options["--policy-name"],
                            PolicyDocument=_file_argument(options["--policy-document"]))
    # moto validates the policy grammar of the deployment policy too.
    iam.create_policy(PolicyName="ZappaLambdaDeploymentPolicy",
                      PolicyDocument=_filled("ZappaLambdaDeploymentPolicy.json"))


# --- 1. update before any deploy -----------------------------------------------------

def test_01_update_before_deploy_fails(world):
    done = world.zappa("update", L.STAGE)
    assert done.returncode != 0
    assert "ResourceNotFoundException" in _output(done)
    assert f"Function not found: {FUNCTION_ARN}" in _output(done)


# --- 2. deploy -------------------------------------------------------------------------

def test_02_deploy(world):
    done = world.zappa("deploy", L.STAGE)
    assert done.returncode == 0, _output(done)
    match = re.search(r"Deployment complete!: https://(\w+)\.execute-api\."
                      + re.escape(REGION) + r"\.amazonaws\.com/" + L.STAGE, done.stdout)
    assert match, done.stdout
    world.api_id = match.group(1)

    conf = _assert_function_as_configured(world)
    world.code_sha = conf["CodeSha256"]
    _assert_ingress_locked_down(world)
    assert conf["CodeSize"] <= 8 * 1024 * 1024

    cloudformation = world.client("cloudformation")
    stack = cloudformation.describe_stacks(StackName=FUNCTION)["Stacks"][0]
    assert stack["StackStatus"] == "CREATE_COMPLETE"
    world.templates.append(cloudformation.get_template(StackName=FUNCTION)["TemplateBody"])

    apigw = world.client("apigateway")
    api = apigw.get_rest_api(restApiId=world.api_id)
    assert api["name"] == FUNCTION
    resources = {r["path"]: r for r in apigw.get_resources(restApiId=world.api_id)["items"]}
    assert {"/", "/{proxy+}"} <= set(resources)
    method = apigw.get_method(restApiId=world.api_id,
                              resourceId=resources["/{proxy+}"]["id"], httpMethod="ANY")
    integration = method["methodIntegration"]
    assert integration["type"] == "AWS_PROXY"
    assert FUNCTION_ARN in integration["uri"]
    # API Gateway invokes the function as the execution role (moto drops the
    # field from the created method, so read it from the stack's template).
    template = world.templates[-1]
    template = template if isinstance(template, dict) else json.loads(template)
    methods = [r["Properties"] for r in template["Resources"].values()
               if r["Type"] == "AWS::ApiGateway::Method"]
    assert methods and all(m["Integration"]["Credentials"] == ROLE_ARN for m in methods)
    stages = {s["stageName"] for s in apigw.get_stages(restApiId=world.api_id)["item"]}
    assert L.STAGE in stages

    s3 = world.client("s3")
    bucket = SETTINGS["s3_bucket"]
    assert not s3.list_objects_v2(Bucket=bucket).get("Contents"), "upload left behind"
    rules = world.client("events").list_rule_names_by_target(TargetArn=FUNCTION_ARN)
    assert not rules["RuleNames"], "keep_warm is off: no CloudWatch rule"
    assert not list(L.REPO.glob(f"{FUNCTION}-*.zip")), "local zip left in the repository"


def test_03_second_deploy_fails(world):
    done = world.zappa("deploy", L.STAGE)
    assert done.returncode != 0
    assert "This application is already deployed - did you mean to call update?" in _output(done)


def test_04_status(world):
    done = world.zappa("status", L.STAGE)
    assert done.returncode == 0, _output(done)
    for label, value in (("Lambda Name", FUNCTION), ("Lambda Role ARN", ROLE_ARN),
                         ("Lambda Handler", "handler.lambda_handler"),
                         ("Lambda Runtime", SETTINGS["runtime"]),
                         ("Lambda Timeout", str(SETTINGS["timeout_seconds"])),
                         ("API Gateway URL", f"https://{world.api_id}.execute-api.")):
        assert re.search(rf"{label}:\s+{re.escape(value)}", done.stdout), (label, done.stdout)


# --- 3. the deployed artifact answers a real observe ------------------------------------

def test_05_deployed_package_answers_observe(world, emulators, tmp_path):
    """The function's zip as the emulator holds it, unzipped, its handler
    called with an API Gateway event carrying a `jwt dev` token."""
    task = L.unpack(world.moto.function_zip(FUNCTION, REGION), world.home / "var-task")
    misp = emulators["misp"]
    misp.reset()
    claims_file = tmp_path / "claims.json"
    claims_file.write_text(json.dumps(misp.module.CLAIMS))
    token, secret = L.jwt_dev(claims_file)
    observables = json.loads((L.REPO / "observables.json").read_text())
    auth = {"Authorization": f"Bearer {token}"}
    events = [L.rest_v1_event("/observe/observables", observables, auth),
              L.rest_v1_event("/misp/refer/observables", observables[:2], auth)]
    # What the user sets in the Lambda console after `jwt dev`.
    answer = L.invoke_handler(task, events, {"SECRET_KEY": secret, "API_URL": misp.url},
                              L.runtime_layer(world.home), FUNCTION)
    observe, refer = (L.response_json(r) for r in answer["results"])
    ctim_check.assert_valid("/observe/observables", observe, observables)
    assert "errors" not in observe, observe
    assert observe["data"]["verdicts"]["count"] >= len(observables) - 1
    assert observe["data"]["indicators"]["count"] >= 1
    ctim_check.assert_valid("/refer/observables", refer, observables[:2])
    assert misp.calls >= 1


# --- 4. update, tail, undeploy -------------------------------------------------------------

def test_06_update(world):
    done = world.zappa("update", L.STAGE)
    assert done.returncode == 0, _output(done)
    assert f"Your updated Zappa deployment is live!: https://{world.api_id}.execute-api." \
        in done.stdout
    conf = _assert_function_as_configured(world)
    assert conf["CodeSha256"] != world.code_sha, "update uploaded no new code"
    _assert_ingress_locked_down(world)
    stack = world.client("cloudformation").describe_stacks(StackName=FUNCTION)["Stacks"][0]
    assert stack["StackStatus"] == "UPDATE_COMPLETE"
    assert not world.client("s3").list_objects_v2(Bucket=SETTINGS["s3_bucket"]).get("Contents")


def test_07_tail(world):
    logs = world.client("logs")
    group = f"/aws/lambda/{FUNCTION}"
    marker = f"relay-tail-check-{uuid.uuid4().hex[:8]}"
    logs.create_log_group(logGroupName=group)
    logs.create_log_stream(logGroupName=group, logStreamName="2026/01/01/[$LATEST]abc")
    logs.put_log_events(logGroupName=group, logStreamName="2026/01/01/[$LATEST]abc",
                        logEvents=[{"timestamp": int(time.time() * 1000) - 5000,
                                    "message": f"[WARNING] {marker}"}])
    done = world.zappa("tail", L.STAGE, "--since", "10m", "--disable-keep-open")
    assert done.returncode == 0, _output(done)
    assert marker in done.stdout


def test_08_undeploy(world):
    done = world.zappa("undeploy", L.STAGE, "--yes")
    assert done.returncode == 0, _output(done)
    lam = world.client("lambda")
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.get_function(FunctionName=FUNCTION)
    # Zappa deletes the REST API by deleting its stack (moto keeps the API
    # object after a stack deletion; AWS deletes it with the stack).
    stacks = world.client("cloudformation").list_stacks()["StackSummaries"]
    ours = [s["StackStatus"] for s in stacks if s["StackName"] == FUNCTION]
    assert ours and set(ours) == {"DELETE_COMPLETE"}, ours
    assert ("cloudformation", "DeleteStack") in {c[:2] for c in world.calls["undeploy dev --yes"]}
    # manage_roles is false: the user's role outlives the deployment.
    assert world.client("iam").get_role(RoleName=ROLE)["Role"]["Arn"] == ROLE_ARN


def test_09_status_after_undeploy_fails(world):
    done = world.zappa("status", L.STAGE)
    assert done.returncode != 0
    assert f"No Lambda {FUNCTION} detected in {REGION} - have you deployed yet?" \
        in _output(done)


# --- 4b. the `vpc` stage: the Lambda inside the VPC of an internal MISP ----------------------

VPC_STAGE = "vpc"


def test_09b_vpc_stage_deploys_into_the_subnets(world):
    """HOWTO step 7: the user's subnet and security-group ids in place of the
    placeholders, `zappa deploy vpc`, then the function's VpcConfig."""
    settings = L.load_settings()
    stage = settings[VPC_STAGE]
    assert stage["extends"] == L.STAGE and set(stage) == {"extends", "vpc_config"}
    placeholders = stage["vpc_config"]["SubnetIds"] + stage["vpc_config"]["SecurityGroupIds"]
    assert len(stage["vpc_config"]["SubnetIds"]) >= 2, "two availability zones"
    assert all(re.fullmatch(r"<[A-Z_]+>", p) for p in placeholders), placeholders
    ec2 = world.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.20.0.0/16")["Vpc"]["VpcId"]
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.20.{i}.0/24",
                                 AvailabilityZone=f"{REGION}{zone}")["Subnet"]["SubnetId"]
               for i, zone in enumerate("ab")]
    group = ec2.create_security_group(GroupName="tr-intel-relay", VpcId=vpc,
                                      Description="relay to MISP")["GroupId"]
    text = json.dumps(settings)
    for placeholder, value in zip(placeholders, subnets + [group]):
        text = text.replace(placeholder, value)
    (world.home / "vpc").mkdir()
    settings_file = L.write_test_settings(world.home / "vpc", json.loads(text))

    done = world.zappa("deploy", VPC_STAGE, settings_file=settings_file)
    assert done.returncode == 0, _output(done)
    function = f"{SETTINGS['project_name']}-{VPC_STAGE}"
    conf = world.client("lambda").get_function(FunctionName=function)["Configuration"]
    assert sorted(conf["VpcConfig"]["SubnetIds"]) == sorted(subnets)
    assert conf["VpcConfig"]["SecurityGroupIds"] == [group]
    for key, setting in (("Runtime", "runtime"), ("Timeout", "timeout_seconds"),
                         ("MemorySize", "memory_size")):
        assert conf[key] == SETTINGS[setting], key
    assert conf["Role"] == ROLE_ARN
    assert not RELAY_VARIABLES & set(conf.get("Environment", {}).get("Variables", {}))
    done = world.zappa("status", VPC_STAGE, settings_file=settings_file)
    assert re.search(r"Lambda VPC ID:\s+vpc-", done.stdout), _output(done)
    done = world.zappa("undeploy", VPC_STAGE, "--yes", settings_file=settings_file)
    assert done.returncode == 0, _output(done)


def test_09c_vpc_policies_scope_network_interfaces_to_the_vpc(world):
    execution = _policy("ZappaLambdaVpcExecutionPolicy.json")
    ours = f"arn:aws:ec2:{REGION}:{L.ACCOUNT_ID}:vpc/{PLACEHOLDERS['<VPC_ID>']}"
    other = f"arn:aws:ec2:{REGION}:{L.ACCOUNT_ID}:vpc/vpc-0ffffffffffffffff"
    interface = f"arn:aws:ec2:{REGION}:{L.ACCOUNT_ID}:network-interface/eni-0123"
    subnet = f"arn:aws:ec2:{REGION}:{L.ACCOUNT_ID}:subnet/subnet-0123"
    for action in ("ec2:CreateNetworkInterface", "ec2:DeleteNetworkInterface",
                   "ec2:AssignPrivateIpAddresses", "ec2:UnassignPrivateIpAddresses"):
        for resource in (interface, subnet):
            assert allows(execution, action, resource, {"ec2:Vpc": ours}), action
            assert not allows(execution, action, resource, {"ec2:Vpc": other}), action
        assert not allows(execution, action, interface.replace(REGION, "eu-west-1"),
                          {"ec2:Vpc": ours})
    for action in ("ec2:DescribeNetworkInterfaces", "ec2:DescribeSubnets"):
        assert allows(execution, action)
    deployment = _policy("ZappaLambdaVpcDeploymentPolicy.json")
    for action in ("ec2:DescribeSecurityGroups", "ec2:DescribeSubnets", "ec2:DescribeVpcs"):
        assert allows(deployment, action)
    assert {a for s in deployment["Statement"] for a in _as_list(s["Action"])} \
        == {"ec2:DescribeSecurityGroups", "ec2:DescribeSubnets", "ec2:DescribeVpcs"}
    # moto checks the policy grammar; the execution policy went in at step 00.
    world.client("iam").create_policy(PolicyName="ZappaLambdaVpcDeploymentPolicy",
                                      PolicyDocument=json.dumps(deployment))
    role_policies = world.client("iam").list_role_policies(RoleName=ROLE)["PolicyNames"]
    assert "ZappaLambdaVpcExecutionPolicy" in role_policies


# --- 5. the IAM policies of aws/ cover what Zappa did ---------------------------------------

def _policy(name):
    return json.loads(_filled(name))


def _as_list(value):
    return value if isinstance(value, list) else [value]


def _conditions_hold(statement, context):
    """IAM's StringEquals[IfExists] on the request `context` {key: value}; other
    operators are not used by aws/*.json (the test fails on them)."""
    for operator, tests in statement.get("Condition", {}).items():
        assert operator in ("StringEquals", "StringEqualsIfExists"), operator
        for key, expected in tests.items():
            if key not in context:
                if operator.endswith("IfExists"):
                    continue
                return False
            if context[key] not in _as_list(expected):
                return False
    return True


def allows(policy, action, resource="*", context=None):
    """True when an Allow statement matches `action` on `resource` in `context`."""
    for statement in policy["Statement"]:
        if statement["Effect"] != "Allow":
            continue
        if not any(fnmatch.fnmatchcase(action.lower(), a.lower())
                   for a in _as_list(statement["Action"])):
            continue
        if not _conditions_hold(statement, context or {}):
            continue
        if resource == "*" or any(fnmatch.fnmatchcase(resource, r)
                                  for r in _as_list(statement["Resource"])):
            return True
    return False


S3_ACTIONS = {"HeadBucket": "ListBucket", "ListObjects": "ListBucket",
              "ListObjectsV2": "ListBucket", "HeadObject": "GetObject"}
IAM_PREFIX = {"monitoring": "cloudwatch"}


def iam_action_and_resource(service, operation, method, path):
    """The IAM action a call needs and, where the path names it, the resource."""
    if service == "apigateway":
        return f"apigateway:{method}", f"arn:aws:apigateway:{REGION}::{path}"
    if service == "s3":
        bucket, _, key = path.lstrip("/").partition("/")
        arn = f"arn:aws:s3:::{bucket}" + (f"/{key}" if key else "")
        return f"s3:{S3_ACTIONS.get(operation, operation)}", arn
    if service == "lambda" and FUNCTION in path:
        return f"lambda:{operation}", FUNCTION_ARN
    return f"{IAM_PREFIX.get(service, service)}:{operation}", "*"


# Resources zappa's CloudFormation template holds -> what CloudFormation
# does with the deploying user's credentials to create/update/delete them.
TEMPLATE_ACTIONS = {
    "AWS::ApiGateway::RestApi": ["apigateway:POST", "apigateway:GET", "apigateway:DELETE",
                                 "apigateway:PATCH"],
    "AWS::ApiGateway::Resource": ["apigateway:POST", "apigateway:GET", "apigateway:DELETE"],
    "AWS::ApiGateway::Method": ["apigateway:PUT", "apigateway:GET", "apigateway:DELETE",
                                "iam:PassRole"],
    "AWS::Lambda::Permission": ["lambda:AddPermission", "lambda:RemovePermission"],
}


def test_10_deployment_policy_covers_every_call(world):
    policy = _policy("ZappaLambdaDeploymentPolicy.json")
    missing, used = set(), set()
    for command, calls in world.calls.items():
        for service, operation, method, path in calls:
            action, resource = iam_action_and_resource(service, operation, method, path)
            used.add(action)
            if not allows(policy, action, resource):
                missing.add((command, action, resource))
    assert not missing, sorted(missing)
    print("\nIAM actions zappa used:", " ".join(sorted(used)))
    assert {"lambda:CreateFunction", "lambda:UpdateFunctionCode", "lambda:DeleteFunction",
            "cloudformation:CreateStack", "s3:PutObject", "logs:FilterLogEvents",
            "iam:GetRole", "apigateway:POST"} <= used
    assert allows(policy, "iam:PassRole", ROLE_ARN)
    assert allows(policy, "s3:PutObject", f"arn:aws:s3:::{SETTINGS['s3_bucket']}/x.zip")
    assert SETTINGS["s3_bucket"].startswith("zappa-")


def test_11_policy_covers_the_stack_resources(world):
    """CloudFormation creates the API with the caller's permissions."""
    policy = _policy("ZappaLambdaDeploymentPolicy.json")
    templates = [body if isinstance(body, dict) else json.loads(body)
                 for body in world.templates]
    assert templates, "no CloudFormation template seen"
    for template in templates:
        for resource in template["Resources"].values():
            assert resource["Type"] in TEMPLATE_ACTIONS, resource["Type"]
            actions = list(TEMPLATE_ACTIONS[resource["Type"]])
            if "Policy" in resource["Properties"]:   # the XDR-only resource policy
                actions.append("apigateway:UpdateRestApiPolicy")
            for action in actions:
                assert allows(policy, action), action


def test_12_execution_role_lets_api_gateway_invoke_and_lambda_log(world):
    trust = _policy("ZappaLambdaExecutionTrustPolicy.json")
    principals = {p for s in trust["Statement"] for p in _as_list(s["Principal"]["Service"])}
    assert {"lambda.amazonaws.com", "apigateway.amazonaws.com"} <= principals
    execution = _policy("ZappaLambdaExecutionPolicy.json")
    assert allows(execution, "lambda:InvokeFunction", FUNCTION_ARN)
    group = f"arn:aws:logs:{REGION}:{L.ACCOUNT_ID}:log-group:/aws/lambda/{FUNCTION}"
    for action in ("logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"):
        assert allows(execution, action, group + ":log-stream:2026/01/01/[$LATEST]abc")
    assert not allows(execution, "lambda:InvokeFunction",
                      f"arn:aws:lambda:{REGION}:{L.ACCOUNT_ID}:function:someone-else")


def test_13_cycle_time(world):
    assert sum(world.seconds.values()) < 150, world.seconds


def test_14_policies_name_only_this_deployment():
    """Issue 11 item 16: no other function, bucket, stack, region, account or API."""
    deployment = _policy("ZappaLambdaDeploymentPolicy.json")
    other_function = f"arn:aws:lambda:{REGION}:{L.ACCOUNT_ID}:function:{FUNCTION}-other"
    assert allows(deployment, "lambda:UpdateFunctionCode", FUNCTION_ARN)
    for resource in (other_function, FUNCTION_ARN.replace(REGION, "eu-west-1"),
                     FUNCTION_ARN.replace(L.ACCOUNT_ID, "210987654321")):
        assert not allows(deployment, "lambda:UpdateFunctionCode", resource), resource
    assert not allows(deployment, "s3:PutObject", "arn:aws:s3:::zappa-someone-else/x.zip")
    assert not allows(deployment, "cloudformation:DeleteStack",
                      f"arn:aws:cloudformation:{REGION}:{L.ACCOUNT_ID}:stack/other/1")
    assert not allows(deployment, "logs:FilterLogEvents",
                      f"arn:aws:logs:{REGION}:{L.ACCOUNT_ID}:log-group:/aws/lambda/other")
    apis = f"arn:aws:apigateway:{REGION}::/restapis"
    assert not allows(deployment, "apigateway:POST", apis.replace(REGION, "eu-west-1"))
    for name, allowed in ((FUNCTION, True), ("someone-elses-api", False)):
        assert allows(deployment, "apigateway:POST", apis,
                      {"apigateway:Request/ApiName": name}) is allowed
        assert allows(deployment, "apigateway:DELETE", apis + "/a1b2c3",
                      {"apigateway:Resource/ApiName": name}) is allowed
        assert allows(deployment, "apigateway:PATCH", apis + "/a1b2c3", {
            "apigateway:Resource/ApiName": FUNCTION,
            "apigateway:Request/ApiName": name}) is allowed

    execution = _policy("ZappaLambdaExecutionPolicy.json")
    for resource in (other_function, FUNCTION_ARN.replace(REGION, "eu-west-1"),
                     FUNCTION_ARN.replace(L.ACCOUNT_ID, "210987654321")):
        assert not allows(execution, "lambda:InvokeFunction", resource), resource

    trust = _policy("ZappaLambdaExecutionTrustPolicy.json")
    for statement in trust["Statement"]:
        assert statement["Condition"] == {"StringEquals": {"aws:SourceAccount": L.ACCOUNT_ID}}


# --- 6. the XDR-only ingress policies of aws/XdrIngress.md ------------------------------

def test_14_ingress_policies_admit_only_cisco_xdr_egress_addresses():
    """One file per XDR region: allow invoking the API, deny every source
    address outside the region's published list (the doc's table)."""
    doc = (AWS_DIR / "XdrIngress.md").read_text()
    rows = re.findall(r"\| `(XdrIngressPolicy\.(\w+)\.json)` \| ([\d., ]+) \|", doc)
    assert sorted(region for _, region, _ in rows) == ["apjc", "eu", "us"]
    assert sorted(p.name for p in AWS_DIR.glob("XdrIngressPolicy.*.json")) == \
        sorted(name for name, _, _ in rows)
    every = set()
    for name, region, addresses in rows:
        listed = {a.strip() + "/32" for a in addresses.split(",")}
        allow, deny = json.loads((AWS_DIR / name).read_text())["Statement"]
        assert (allow["Effect"], allow["Action"], allow["Resource"]) == \
            ("Allow", "execute-api:Invoke", "execute-api:/*")
        assert (deny["Effect"], deny["Action"], deny["Resource"]) == \
            ("Deny", "execute-api:Invoke", "execute-api:/*")
        assert "Condition" not in allow
        assert set(deny["Condition"]["NotIpAddress"]["aws:SourceIp"]) == listed
        assert len(listed) == 3 and not every & listed
        every |= listed
    assert LOCKDOWN["apigateway_policy"] == "aws/XdrIngressPolicy.us.json"
    assert isinstance(LOCKDOWN["lambda_concurrency"], int) and LOCKDOWN["lambda_concurrency"] > 0
    assert "docs.xdr.security.cisco.com/Content/Assets/sources.htm" in doc
