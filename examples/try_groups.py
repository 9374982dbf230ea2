from coltra.agents import DAgent
from coltra.envs import MultiGymEnv
from coltra.groups import HomogeneousGroup
from coltra.models import MLPModel

env = MultiGymEnv.get_venv(8, env_name="CartPole-v1")
model = MLPModel(
    {
        "input_size": env.observation_space.shape[0],
        "num_actions": env.action_space.n,  # the seed wrote shape[0]; a Discrete space has n
        "discrete": True,
    },
    action_space=env.action_space,
)
agent = DAgent(model)
agents = HomogeneousGroup(agent)

# What can you do with model, agent and agents?
obs = env.reset()
actions, states, extra = agents.act(obs, get_value=True)
obs, reward, done, info = env.step(actions)
print(f"{len(actions)} agents acted; values of the first: {extra['value']['agent&env=0']:.3f}")
env.close()
