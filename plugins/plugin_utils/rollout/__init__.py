# -*- coding: utf-8 -*-
# Copyright: (c) 2026, idmapguard contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The rollout of one host as one state machine: Python decides once, YAML only runs the steps.

- `state`: what the rollout knows about the host (the operator's options, the facts before and
  after, what each step did) and `start`, the state before the first step;
- `plan`: which step runs next, from the state (re-made by every `advance`);
- `advance`: the state after a step's result (one function per step, `advance.STEPS`);
- `record`: the host's row of the fleet report;
- `proof`: whether the canary and the correctness proof passed (module_utils/proof_verdict.py);
- `guard`: whether the copy-cache guard runs, is installed, stopped or left out, and why.

- `fold`: the state from what the steps' tasks registered (start, then `advance` per step).

playbooks/tasks/rollout_host.yml runs verify and the helper, then playbooks/tasks/steps/*.yml in
`plan.STEP_ORDER`, each `when: _igr.plan.<step>.run`, each one module or role call that only
registers; `_igr` is a lazily templated variable, the `rollout_state` filter (plugins/filter/rollout.py)
of the operator's options over those results.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name
