"""HarborEnvironment: the verifiers v1 environment prime-rl loads for the id `harbor-env`."""

from __future__ import annotations

import verifiers.v1 as vf

from harbor_env.taskset import HarborTasksetConfig


class HarborEnvironmentConfig(vf.EnvConfig):
    """One agent seat per episode, run in-process: the Harbor Trial brings its own sandbox,
    so verifiers' runtime is the plain subprocess one (verifiers' default is a remote box)."""

    taskset: HarborTasksetConfig = HarborTasksetConfig(id="harbor-env")
    agent: vf.AgentConfig = vf.AgentConfig(runtime=vf.SubprocessConfig())


class HarborEnvironment(vf.Env[HarborEnvironmentConfig]):
    """Each episode: one Harbor Trial of one task, with the trainer's model as the agent."""

    async def run(self, task: vf.Task, agents: vf.Agents) -> None:
        await agents.agent.run(task)
