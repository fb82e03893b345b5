"""The Pulumi program (`Pulumi.yaml` main: infra/): one stack per environment, named like it.

Thin by design: it loads the declaration and declares resources; `infra/stack.py` does the work.
"""

import pulumi

from infra.spec import load_declaration
from infra.stack import define_stack

config = pulumi.Config()
environment = config.get("environment") or pulumi.get_stack()
declaration = load_declaration(config.get("declaration") or "config/spaces.yaml")
resources = define_stack(declaration, environment, config)
for tier in declaration.tier_names:
    pulumi.export(f"{tier}_url", resources[tier].url)
    pulumi.export(f"{tier}_sha", resources[tier].sha)
