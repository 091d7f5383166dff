#!/usr/bin/env python3
"""Checks deploy/ against the kiln binary that will run it.

Every kiln command line that deploy/ runs (the systemd units' ExecStart, the Containerfile's
CMD, the compose file's commands, the Kubernetes containers' args) is run as
`kiln --check-flags ...`, which parses it and starts nothing; each must be valid. The units must
pass `systemd-analyze verify` without a word of complaint. Prints what it checked; exits 1 on
the first failure.

Usage: check_deploy.py --kiln PATH --deploy DIR
"""

import argparse
import os
import re
import shlex
import subprocess
import sys
import tempfile

import yaml

INSTALLED_KILN = "/usr/local/bin/kiln"


def fail(message):
    print("FAIL: " + message)
    sys.exit(1)


def check_command_line(kiln, where, args):
    """Runs `kiln --check-flags ARGS` and fails unless kiln calls the line valid."""
    if not args:
        fail(f"{where}: no kiln command line")
    done = subprocess.run([kiln, "--check-flags", *args], capture_output=True, text=True,
                          timeout=60)
    if done.returncode != 0 or "the command line is valid" not in done.stdout:
        fail(f"{where}: kiln refuses {shlex.join(args)}: {done.stderr.strip()}")
    print(f"ok {where}: kiln {shlex.join(args)}")


def unit_settings(text):
    """The (key, value) pairs of a unit file, in order, continuation lines joined."""
    text = re.sub(r"\\\n", " ", text)
    pairs = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in "#;[" or "=" not in line:
            continue
        key, value = line.split("=", 1)
        pairs.append((key.strip(), value.strip()))
    return pairs


def expand_exec(value, unit_name, instance, environment):
    """ExecStart's words as systemd would run them: specifiers, then ${VAR} (one word) and
    $VAR (split into words) from the unit's Environment= settings."""
    specifiers = {"%i": instance, "%I": instance, "%H": "host", "%d":
                  "/run/credentials/" + unit_name, "%S": "/var/lib", "%%": "%"}
    value = re.sub(r"%[iIHdS%]", lambda m: specifiers[m.group(0)], value)
    words = []
    for word in shlex.split(value):
        if re.fullmatch(r"\$[A-Za-z_][A-Za-z0-9_]*", word):
            words.extend(environment.get(word[1:], "").split())
            continue
        words.append(re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}",
                            lambda m: environment.get(m.group(1), ""), word))
    return words


def check_systemd(kiln, folder):
    units = sorted(f for f in os.listdir(folder) if f.endswith(".service"))
    if not units:
        fail(f"no units in {folder}")
    with tempfile.TemporaryDirectory() as scratch:
        for unit in units:
            text = open(os.path.join(folder, unit)).read()
            if INSTALLED_KILN not in text:
                fail(f"{unit} does not run {INSTALLED_KILN}")
            # A template is verified as an instance; kiln as this build's binary.
            name = unit.replace("@.service", "@cpu.service")
            path = os.path.join(scratch, name)
            with open(path, "w") as out:
                out.write(text.replace(INSTALLED_KILN, kiln))
            done = subprocess.run(["systemd-analyze", "verify", path], capture_output=True,
                                  text=True, timeout=120)
            complaints = (done.stdout + done.stderr).strip()
            if done.returncode != 0 or complaints:
                fail(f"systemd-analyze verify {unit}: {complaints}")
            print(f"ok {unit}: systemd-analyze verify")
            environment = {}
            commands = 0
            for key, value in unit_settings(text):
                if key == "Environment":
                    for word in shlex.split(value):
                        name_value = word.split("=", 1)
                        environment[name_value[0]] = name_value[1] if len(name_value) > 1 else ""
                if key in ("ExecStart", "ExecStartPre", "ExecReload"):
                    words = expand_exec(value.lstrip("-@:+!"), name, "cpu", environment)
                    if words[0] != INSTALLED_KILN:
                        continue
                    check_command_line(kiln, f"{unit} {key}", words[1:])
                    commands += 1
            if commands == 0:
                fail(f"{unit} runs no kiln command")


def containerfile_command(path):
    """The kiln command line the image runs by default: its ENTRYPOINT and CMD (exec form)."""
    entrypoint, command = [], []
    for line in open(path).read().replace("\\\n", " ").splitlines():
        if line.startswith("ENTRYPOINT "):
            entrypoint = yaml.safe_load(line[len("ENTRYPOINT "):])
        elif line.startswith("CMD "):
            command = yaml.safe_load(line[len("CMD "):])
    if entrypoint != [INSTALLED_KILN]:
        fail(f"{path}: the ENTRYPOINT is not [\"{INSTALLED_KILN}\"]")
    return command


# In every Debian 12 image: the C library, the C++ runtime and libgcc.
BASE_PACKAGES = {"libc6", "libstdc++6", "libgcc-s1"}


def linked_packages(kiln):
    """The Debian packages of the libraries the binary names in its NEEDED entries."""
    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[(.+?)\]",
                        subprocess.run(["readelf", "-d", kiln], capture_output=True, text=True,
                                       check=True).stdout)
    resolved = {}
    for line in subprocess.run(["ldd", kiln], capture_output=True, text=True,
                               check=True).stdout.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[1] == "=>":
            resolved[parts[0]] = parts[2]
    packages = set()
    for library in needed:
        if library.startswith("ld-linux"):
            continue  # the dynamic loader, libc6's
        if library not in resolved:
            fail(f"ldd does not resolve {library}, which {kiln} needs")
        # The package of the file itself, not of a link to it (a -dev package's); dpkg knows it
        # by the path its package installed it at, which with /usr merged may be under /lib.
        real = os.path.realpath(resolved[library])
        for path in (real, real.replace("/usr/lib/", "/lib/", 1)):
            owner = subprocess.run(["dpkg", "-S", path], capture_output=True, text=True)
            if owner.returncode == 0:
                break
        if owner.returncode != 0:
            fail(f"no Debian package holds {resolved[library]}")
        packages.add(owner.stdout.split(":")[0])
    return packages


def check_runtime_packages(kiln, containerfile):
    """The runtime stage installs the package of every library the binary links."""
    text = open(containerfile).read().replace("\\\n", " ")
    stages = text.split("\nFROM ")
    installed = set(re.findall(r"[a-z0-9][a-z0-9.+-]+", stages[-1].split("apt-get install", 1)[1]
                               .split("&&", 1)[0]))
    missing = sorted(linked_packages(kiln) - installed - BASE_PACKAGES)
    if missing:
        fail(f"the Containerfile's runtime stage lacks {', '.join(missing)}, which kiln links")
    print("ok Containerfile runtime stage: every library kiln links")


def check_container(kiln, folder):
    check_command_line(kiln, "Containerfile CMD",
                       containerfile_command(os.path.join(folder, "Containerfile")))
    check_runtime_packages(kiln, os.path.join(folder, "Containerfile"))
    compose = os.path.join(folder, "compose.yaml")
    if not os.path.exists(compose):
        return
    services = yaml.safe_load(open(compose))["services"]
    checked = 0
    for name, service in services.items():
        if "build" not in service and not str(service.get("image", "")).startswith("kiln"):
            continue  # another program's image (PostgreSQL)
        command = service.get("command")
        if isinstance(command, str):
            command = shlex.split(command)
        command = [re.sub(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", "value", w) for w in command]
        check_command_line(kiln, f"compose.yaml service {name}", command)
        checked += 1
    if checked == 0:
        fail("compose.yaml runs no kiln service")


def check_kubernetes(kiln, folder):
    kustomization = yaml.safe_load(open(os.path.join(folder, "kustomization.yaml")))
    images = {i["name"] for i in kustomization.get("images", [])}
    checked = 0
    for resource in kustomization["resources"]:
        for document in yaml.safe_load_all(open(os.path.join(folder, resource))):
            pod = document.get("spec", {}).get("template", {}).get("spec", {})
            for container in pod.get("containers", []):
                if container.get("image") not in images:
                    continue
                args = [re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", "value", a)
                        for a in container.get("args", [])]
                check_command_line(
                    kiln, f"{resource} {document['metadata']['name']}/{container['name']}", args)
                checked += 1
    if checked == 0:
        fail(f"{folder} runs no kiln container")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kiln", required=True)
    parser.add_argument("--deploy", required=True)
    options = parser.parse_args()
    options.kiln = os.path.abspath(options.kiln)
    # The check itself must be able to fail: kiln refuses a flag it does not know.
    refused = subprocess.run([options.kiln, "--check-flags", "tracker", "--no-such-flag"],
                             capture_output=True, text=True)
    if refused.returncode != 2:
        fail("kiln --check-flags accepted an unknown flag")
    check_systemd(options.kiln, os.path.join(options.deploy, "systemd"))
    check_container(options.kiln, os.path.join(options.deploy, "container"))
    check_kubernetes(options.kiln, os.path.join(options.deploy, "kubernetes", "base"))
    print("deploy/ is valid for this kiln")


if __name__ == "__main__":
    main()
