"""The Pulumi program (`Pulumi.yaml` main: infra/): one stack per environment, named like it.

Thin by design: it loads the declaration and declares resources; `infra/stack.py` does the work.
Pulumi runs this file from `infra/`, so a relative declaration path is resolved against the project
root (where `Pulumi.yaml` is), not the working directory.
"""

from pathlib import Path

import pulumi

from infra.spec import load_declaration
from infra.stack import define_stack

PROJECT_ROOT = Path(__file__).resolve().parent.parent

config = pulumi.Config()
environment = config.get("environment") or pulumi.get_stack()
declaration_path = Path(config.get("declaration") or "config/spaces.yaml")
if not declaration_path.is_absolute():
    declaration_path = PROJECT_ROOT / declaration_path
declaration = load_declaration(declaration_path)
resources = define_stack(declaration, environment, config)
for tier in declaration.tier_names:
    pulumi.export(f"{tier}_url", resources[tier].url)
    pulumi.export(f"{tier}_sha", resources[tier].sha)
