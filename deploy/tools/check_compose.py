#!/usr/bin/env python3
"""Policy checks on a Compose project, after `docker compose config --format json` has parsed,
validated and normalised it (deploy/validate.sh):

* every service has a health check, and every `depends_on` waits for `service_healthy`;
* every service has CPU and memory limits, drops all capabilities, sets no-new-privileges and
  runs with a read-only root filesystem;
* services join only networks the file declares (not Compose's implicit `default`);
* state lives in declared named volumes; models are mounted read-only;
* services built from this repository run as a non-root user.

Usage: check_compose.py CONFIG.json. Exit status 0 when the project passes.
"""
import json
import sys


def main(path):
    cfg = json.load(open(path, encoding="utf-8"))
    errors = []
    services = cfg.get("services", {})
    networks = cfg.get("networks", {})
    volumes = cfg.get("volumes", {})
    if not services:
        errors.append("no services")
    if not any(s.get("depends_on") for s in services.values()):
        errors.append("no service depends_on another: start order is not expressed")
    if not volumes:
        errors.append("no named volumes: state would live in anonymous volumes")
    for name, net in networks.items():
        if name == "default":
            errors.append("the implicit `default` network is in use; declare an isolated network")
        if net.get("external"):
            errors.append(f"network {name} is external: the stack should own its isolated network")

    for name, svc in services.items():
        where = f"service {name}"
        hc = svc.get("healthcheck")
        if not hc or hc.get("disable") or hc.get("test", ["NONE"])[0] == "NONE":
            errors.append(f"{where}: no healthcheck")
        for dep, spec in (svc.get("depends_on") or {}).items():
            if spec.get("condition") != "service_healthy":
                errors.append(f"{where}: depends_on {dep} must use condition service_healthy")
        limits = (svc.get("deploy") or {}).get("resources", {}).get("limits", {})
        for r in ("cpus", "memory"):
            if not limits.get(r):
                errors.append(f"{where}: deploy.resources.limits.{r} is required")
        if "ALL" not in (svc.get("cap_drop") or []):
            errors.append(f"{where}: cap_drop must include ALL")
        if not any(o.replace(" ", "") in ("no-new-privileges:true", "no-new-privileges")
                   for o in svc.get("security_opt") or []):
            errors.append(f"{where}: security_opt no-new-privileges:true is required")
        if not svc.get("read_only"):
            errors.append(f"{where}: read_only root filesystem is required")
        nets = svc.get("networks") or {}
        if not nets or "default" in nets:
            errors.append(f"{where}: must join a declared network, not the implicit default")
        for n in nets:
            if n not in networks:
                errors.append(f"{where}: network {n} is not declared")
        if svc.get("network_mode") == "host":
            errors.append(f"{where}: host networking is not allowed")
        if svc.get("privileged"):
            errors.append(f"{where}: privileged is not allowed")
        for v in svc.get("volumes") or []:
            if v.get("type") == "volume" and v.get("source") not in volumes:
                errors.append(f"{where}: volume {v.get('source')} is not a declared named volume")
            if v.get("target", "").rstrip("/").endswith("/models") and not v.get("read_only"):
                errors.append(f"{where}: models at {v['target']} must be mounted read-only")
        if "build" in svc:
            user = str(svc.get("user", ""))
            if not user or user.split(":")[0] in ("0", "root"):
                errors.append(f"{where}: images built here must run as a non-root user")

    for e in errors:
        print(f"FAIL {e}")
    print(f"check_compose: {len(services)} services, {len(networks)} networks, "
          f"{len(volumes)} volumes: {'ok' if not errors else f'{len(errors)} error(s)'}")
    return 1 if errors else 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1]))
