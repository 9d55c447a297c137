"""Third-party clients run the env as their users run them (issue 16): CleanRL's PPO loop, SB3
(PPO, A2C, DQN, VecVideoRecorder, VecNormalize), torchrl's GymWrapper + Collector, tianshou, and
the Discrete action mode they need. Each runs a few hundred steps; no timing is asserted."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from helpers import OUTSIDE_SOURCE

import escape_room_env as er

torch = pytest.importorskip("torch", reason="the clients train torch policies")
nn = torch.nn

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


# -- the Discrete action mode --------------------------------------------------------------------


def test_every_discrete_index_steps_exactly_the_multidiscrete_action_it_names():
    # 160 envs, env i plays index i: every index at once, over several steps, bit for bit.
    n = er.spaces.NUM_DISCRETE_ACTIONS
    assert n == 160
    flat = er.EscapeRoomVectorEnv(n, action_mode="discrete", seed=5, num_threads=1)
    multi = er.EscapeRoomVectorEnv(n, seed=5, num_threads=1)
    assert flat.single_action_space == gym.spaces.Discrete(160)
    index = np.arange(n)
    rows = np.stack(np.unravel_index(index, (4, 8, 5)), axis=1)
    assert [er.spaces.discrete_action(*row) for row in rows] == index.tolist()
    assert rows[122].tolist() == [
        er.action.move_amount.FAST,
        er.action.move_angle.FORWARD,
        er.action.rotate.NONE,
    ]
    for a, b in zip(flat.reset(seed=1), multi.reset(seed=1)):
        np.testing.assert_equal(a, b)
    for step in range(30):
        got = flat.step(np.roll(index, step).astype(np.int32 if step % 2 else np.int64))
        want = multi.step(np.roll(rows, step, axis=0))
        np.testing.assert_array_equal(
            flat.sim.action_tensor().to_numpy().reshape(n, 3), np.roll(rows, step, axis=0)
        )
        for a, b in zip(got[:4], want[:4]):
            assert a.tobytes() == b.tobytes()
        for key in got[4]:
            np.testing.assert_array_equal(got[4][key], want[4][key])
    assert (flat.sim.state_hashes() == multi.sim.state_hashes()).all()


def test_a_recording_of_discrete_steps_holds_the_decoded_actions_and_replays_exactly(tmp_path):
    path = tmp_path / "discrete.bin"
    envs = er.EscapeRoomVectorEnv(8, action_mode="discrete", seed=2, num_threads=1)
    rng = np.random.default_rng(1)
    with envs.sim.recording(path, seed=4):
        for _ in range(40):
            index = rng.integers(0, 160, 8)
            envs.step(index)
            rows = np.stack(np.unravel_index(index, (4, 8, 5)), axis=1)
            np.testing.assert_array_equal(envs.sim.action_tensor().to_numpy().reshape(8, 3), rows)
    replay = er.SimManager.from_replay(path)
    while not replay.replay_step():  # verifies the recorded state hashes on the way
        pass
    assert (replay.state_hashes() == envs.sim.state_hashes()).all()


def test_the_discrete_single_env_matches_the_multidiscrete_one():
    flat, multi = er.EscapeRoomEnv(action_mode="discrete"), er.EscapeRoomEnv()
    np.testing.assert_array_equal(flat.reset(seed=3)[0], multi.reset(seed=3)[0])
    rng = np.random.default_rng(0)
    for index in rng.integers(0, 160, 50):
        a, b = flat.step(int(index)), multi.step(np.array(np.unravel_index(index, (4, 8, 5))))
        assert a[0].tobytes() == b[0].tobytes() and a[1:] == b[1:]


def test_bad_discrete_actions_raise_clear_errors_and_step_nothing():
    envs = er.EscapeRoomVectorEnv(4, action_mode="discrete", seed=0, num_threads=1)
    envs.reset(seed=0)
    before = envs.sim.state_hashes()
    for actions, error, message in [
        (
            np.array([0, 1, 2, 160]),
            ValueError,
            r"actions\[3\] \(the Discrete action of env 3\) is 160, expected 0 <= action < 160",
        ),
        (np.array([-1, 1, 2, 3]), ValueError, r"actions\[0\] \(the Discrete action of env 0\) is -1"),
        (np.array([2**40, 1, 2, 3]), ValueError, r"is 1099511627776, expected"),
        (np.zeros((4, 3), np.int64), ValueError, r"actions must have shape \(4,\), got \(4, 3\)"),
        (np.zeros(5, np.int64), ValueError, r"actions must have shape \(4,\), got \(5,\)"),
        (np.zeros(4, np.float32), TypeError, r"int32 or int64 array of shape \(4,\), got dtype float32"),
        (torch.zeros(4), TypeError, r"got dtype float32"),
    ]:
        with pytest.raises(error, match=message):
            envs.step(actions)
    assert (envs.sim.state_hashes() == before).all()
    env = er.EscapeRoomEnv(action_mode="discrete")
    env.reset(seed=0)
    for action, error, message in [
        (160, ValueError, r"action 160 is outside Discrete\(160\)"),
        (-1, ValueError, r"action -1 is outside Discrete\(160\)"),
        (1.0, TypeError, r"action must be one integer in \[0, 160\) \(Discrete\(160\)\), got dtype float64"),
        ([1, 2, 3], ValueError, r"action must be one integer \(Discrete\(160\)\), got shape \(3,\)"),
    ]:
        with pytest.raises(error, match=message):
            env.step(action)
    assert env.sim.tensor("elapsed_steps").to_numpy().item() == 0
    for build in (er.EscapeRoomVectorEnv, er.EscapeRoomEnv):
        with pytest.raises(
            ValueError, match=r"action_mode must be one of 'multi_discrete', 'discrete', got 'flat'"
        ):
            build(action_mode="flat")


def test_the_discrete_ids_build_discrete_envs_with_make_and_make_vec():
    env = gym.make("EscapeRoomDiscrete-v0")
    assert env.action_space == gym.spaces.Discrete(160) and env.unwrapped.action_mode == "discrete"
    envs = gym.make_vec("EscapeRoomDiscrete-v0", num_envs=4)
    assert type(envs) is er.EscapeRoomVectorEnv and envs.single_action_space == gym.spaces.Discrete(160)
    assert envs.action_space == gym.spaces.MultiDiscrete([160] * 4)
    envs.reset(seed=0)
    envs.step(envs.action_space.sample())
    sync = gym.make_vec("EscapeRoomDiscrete-v0", num_envs=2, vectorization_mode="sync")
    assert sync.single_action_space == gym.spaces.Discrete(160)
    for e in (env, envs, sync):
        e.close()


def test_the_registered_specs_tell_the_episode_length_and_a_reward_threshold():
    for env_id in ("EscapeRoom-v0", "EscapeRoomDiscrete-v0"):
        spec = gym.spec(env_id)
        assert spec.max_episode_steps == 200 == er._core.DEFAULT_EPISODE_LEN
        assert spec.reward_threshold == 2.5


def test_a_time_limit_truncation_of_single_envs_reports_the_native_termination_reason():
    # gymnasium's TimeLimit (the spec's max_episode_steps) and the simulator end the episode on
    # the same step, so a SyncVectorEnv of single envs and the native env agree: reason 0.
    sync = gym.make_vec("EscapeRoom-v0", num_envs=2, vectorization_mode="sync")
    native = gym.make_vec("EscapeRoom-v0", num_envs=2)
    assert isinstance(sync.envs[0], gym.wrappers.TimeLimit)
    sync.reset(seed=0)
    native.reset(seed=0)
    actions = np.array([[0, 0, 2]] * 2)
    for _ in range(200):
        a, b = sync.step(actions), native.step(actions)
    for got in (a, b):
        assert got[3].tolist() == [True, True] and got[2].tolist() == [False, False]
        assert got[4]["termination_reason"].tolist() == [0, 0] and got[4]["elapsed_step"].tolist() == [
            200,
            200,
        ]
    sync.close()
    native.close()


# -- CleanRL ---------------------------------------------------------------------------------------


def test_cleanrl_ppo_loop_runs_by_env_id():
    # CleanRL's ppo.py (github.com/vwxyzjn/cleanrl, cleanrl/ppo.py), reproduced faithfully rather
    # than vendored: its make_env, Agent, rollout, GAE and update, with its defaults except the
    # budget; run as `python ppo.py --env-id escape_room_env:EscapeRoomDiscrete-v0`.
    env_id, num_envs, num_steps, total_timesteps = "escape_room_env:EscapeRoomDiscrete-v0", 4, 128, 1024
    gamma, gae_lambda, update_epochs, num_minibatches, clip_coef = 0.99, 0.95, 4, 4, 0.2

    def make_env(env_id):
        def thunk():
            env = gym.make(env_id)
            return gym.wrappers.RecordEpisodeStatistics(env)

        return thunk

    def layer_init(layer, std=2**0.5, bias_const=0.0):
        nn.init.orthogonal_(layer.weight, std)
        nn.init.constant_(layer.bias, bias_const)
        return layer

    class Agent(nn.Module):
        def __init__(self, envs):
            super().__init__()
            n_obs = np.array(envs.single_observation_space.shape).prod()
            self.critic = nn.Sequential(
                layer_init(nn.Linear(n_obs, 64)), nn.Tanh(), layer_init(nn.Linear(64, 64)), nn.Tanh(),
                layer_init(nn.Linear(64, 1), std=1.0),
            )  # fmt: skip
            self.actor = nn.Sequential(
                layer_init(nn.Linear(n_obs, 64)), nn.Tanh(), layer_init(nn.Linear(64, 64)), nn.Tanh(),
                layer_init(nn.Linear(64, envs.single_action_space.n), std=0.01),
            )  # fmt: skip

        def get_value(self, x):
            return self.critic(x)

        def get_action_and_value(self, x, action=None):
            probs = torch.distributions.Categorical(logits=self.actor(x))
            if action is None:
                action = probs.sample()
            return action, probs.log_prob(action), probs.entropy(), self.critic(x)

    torch.manual_seed(1)
    envs = gym.vector.SyncVectorEnv([make_env(env_id) for _ in range(num_envs)])
    assert isinstance(envs.single_action_space, gym.spaces.Discrete), (
        "only discrete action space is supported"
    )
    agent = Agent(envs)
    optimizer = torch.optim.Adam(agent.parameters(), lr=2.5e-4, eps=1e-5)
    obs = torch.zeros((num_steps, num_envs, *envs.single_observation_space.shape))
    actions = torch.zeros((num_steps, num_envs, *envs.single_action_space.shape))
    logprobs, rewards, dones, values = (torch.zeros((num_steps, num_envs)) for _ in range(4))
    next_obs, _ = envs.reset(seed=1)
    next_obs, next_done = torch.Tensor(next_obs), torch.zeros(num_envs)
    batch_size = num_envs * num_steps
    episodic_returns = []
    for _iteration in range(total_timesteps // batch_size):
        for step in range(num_steps):
            obs[step], dones[step] = next_obs, next_done
            with torch.no_grad():
                action, logprob, _, value = agent.get_action_and_value(next_obs)
                values[step] = value.flatten()
            actions[step], logprobs[step] = action, logprob
            next_obs, reward, terminations, truncations, infos = envs.step(action.cpu().numpy())
            next_done = np.logical_or(terminations, truncations)
            rewards[step] = torch.tensor(reward).view(-1)
            next_obs, next_done = torch.Tensor(next_obs), torch.Tensor(next_done)
            # CleanRL's logging (gymnasium 1.x): RecordEpisodeStatistics's "episode" info
            if "episode" in infos:
                episodic_returns += infos["episode"]["r"][infos["_episode"]].tolist()
        with torch.no_grad():
            next_value = agent.get_value(next_obs).reshape(1, -1)
            advantages, lastgaelam = torch.zeros_like(rewards), 0
            for t in reversed(range(num_steps)):
                nextnonterminal = 1.0 - (next_done if t == num_steps - 1 else dones[t + 1])
                nextvalues = next_value if t == num_steps - 1 else values[t + 1]
                delta = rewards[t] + gamma * nextvalues * nextnonterminal - values[t]
                advantages[t] = lastgaelam = delta + gamma * gae_lambda * nextnonterminal * lastgaelam
            returns = advantages + values
        b_obs = obs.reshape((-1, *envs.single_observation_space.shape))
        b_logprobs, b_actions = logprobs.reshape(-1), actions.reshape((-1, *envs.single_action_space.shape))
        b_advantages, b_returns = advantages.reshape(-1), returns.reshape(-1)
        b_inds = np.arange(batch_size)
        for _epoch in range(update_epochs):
            np.random.shuffle(b_inds)
            for start in range(0, batch_size, batch_size // num_minibatches):
                mb = b_inds[start : start + batch_size // num_minibatches]
                _, newlogprob, entropy, newvalue = agent.get_action_and_value(b_obs[mb], b_actions.long()[mb])
                ratio = (newlogprob - b_logprobs[mb]).exp()
                mb_adv = (b_advantages[mb] - b_advantages[mb].mean()) / (b_advantages[mb].std() + 1e-8)
                pg_loss = torch.max(
                    -mb_adv * ratio, -mb_adv * torch.clamp(ratio, 1 - clip_coef, 1 + clip_coef)
                ).mean()
                v_loss = 0.5 * ((newvalue.view(-1) - b_returns[mb]) ** 2).mean()
                loss = pg_loss - 0.01 * entropy.mean() + v_loss * 0.5
                optimizer.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(agent.parameters(), 0.5)
                optimizer.step()
    envs.close()
    assert torch.isfinite(loss)
    assert len(episodic_returns) == 4  # 256 steps of each env: one 200-step episode each


def test_the_cleanrl_example_trains_briefly(tmp_path):
    out = subprocess.run(
        [sys.executable, str(EXAMPLES / "cleanrl_ppo.py"), "--total-timesteps", "2048", "--num-envs", "8"],
        cwd=OUTSIDE_SOURCE,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    lines = [line for line in out.stdout.splitlines() if line.startswith("global_step=")]
    assert len(lines) == 2 and "episodic_return=" in lines[-1]


# -- Stable-Baselines3 ----------------------------------------------------------------------------


@pytest.mark.parametrize("algo", ["PPO", "A2C"])
def test_sb3_on_policy_algorithms_learn_on_the_vec_env(algo):
    import stable_baselines3
    from stable_baselines3.common.vec_env import VecMonitor, VecNormalize

    from escape_room_env.sb3 import EscapeRoomVecEnv

    venv = VecNormalize(VecMonitor(EscapeRoomVecEnv(num_envs=8, seed=0, num_threads=1)))
    model = getattr(stable_baselines3, algo)("MlpPolicy", venv, n_steps=32, seed=0, device="cpu")
    model.learn(total_timesteps=512)
    assert model.num_timesteps == 512
    venv.close()


def test_sb3_dqn_learns_on_the_discrete_id():
    from stable_baselines3 import DQN

    model = DQN(
        "MlpPolicy", "EscapeRoomDiscrete-v0", learning_starts=64, buffer_size=1000, seed=0, device="cpu"
    )
    model.learn(total_timesteps=300)
    assert model.num_timesteps == 300
    model.get_env().close()


def test_sb3_dqn_runs_on_the_discrete_vec_env():
    from stable_baselines3 import DQN

    from escape_room_env.sb3 import EscapeRoomVecEnv

    venv = EscapeRoomVecEnv(num_envs=4, action_mode="discrete", seed=0, num_threads=1)
    model = DQN("MlpPolicy", venv, learning_starts=64, buffer_size=1000, seed=0, device="cpu")
    model.learn(total_timesteps=256)
    assert model.num_timesteps == 256
    venv.close()


def test_sb3_vec_video_recorder_writes_a_video(tmp_path):
    from stable_baselines3.common.vec_env import VecVideoRecorder

    from escape_room_env.sb3 import EscapeRoomVecEnv

    venv = EscapeRoomVecEnv(num_envs=4, render_mode="rgb_array", seed=0, num_threads=1)
    venv = VecVideoRecorder(venv, str(tmp_path), record_video_trigger=lambda step: step == 0, video_length=20)
    venv.reset()
    for _ in range(25):
        venv.step(np.array([venv.action_space.sample() for _ in range(4)]))
    venv.close()
    videos = list(tmp_path.glob("*.mp4"))
    assert len(videos) == 1 and videos[0].stat().st_size > 0
    import imageio.v3 as iio

    frames = iio.imread(videos[0])
    assert frames.shape[0] >= 20 and frames.shape[-1] == 3


# -- torchrl ---------------------------------------------------------------------------------------


def test_torchrl_gym_wrapper_refuses_next_step_and_collects_with_same_step():
    torchrl_envs = pytest.importorskip("torchrl.envs", reason="pip install torchrl")
    from torchrl.collectors import Collector

    with pytest.raises(Exception, match=r"(?i)autoreset"):
        torchrl_envs.GymWrapper(gym.make_vec("EscapeRoom-v0", num_envs=4, num_threads=1))
    env = torchrl_envs.GymWrapper(
        gym.make_vec("EscapeRoom-v0", num_envs=4, autoreset_mode="same_step", num_threads=1)
    )
    assert tuple(env.batch_size) == (4,)
    collector = Collector(env, policy=None, frames_per_batch=128, total_frames=512)
    batches = list(collector)
    collector.shutdown()
    assert len(batches) == 4
    assert tuple(batches[0]["next", "observation"].shape) == (4, 32, 87)


# -- tianshou --------------------------------------------------------------------------------------


def test_tianshou_dqn_trains_on_the_discrete_id_with_its_stock_stop_function():
    pytest.importorskip("tianshou", reason="pip install tianshou")
    from tianshou.algorithm.modelfree.dqn import DQN, DiscreteQLearningPolicy
    from tianshou.algorithm.optim import AdamOptimizerFactory
    from tianshou.data import Collector, VectorReplayBuffer
    from tianshou.env import DummyVectorEnv
    from tianshou.trainer import OffPolicyTrainerParams
    from tianshou.utils.net.common import Net

    env = gym.make("EscapeRoomDiscrete-v0")
    train_envs = DummyVectorEnv([lambda: gym.make("EscapeRoomDiscrete-v0") for _ in range(2)])
    test_envs = DummyVectorEnv([lambda: gym.make("EscapeRoomDiscrete-v0")])
    net = Net(state_shape=env.observation_space.shape, action_shape=env.action_space.n, hidden_sizes=[64])
    policy = DiscreteQLearningPolicy(model=net, action_space=env.action_space, eps_training=0.1)
    algorithm = DQN(policy=policy, optim=AdamOptimizerFactory(lr=1e-3), target_update_freq=50)
    train_collector = Collector(algorithm, train_envs, VectorReplayBuffer(1000, 2), exploration_noise=True)
    test_collector = Collector(algorithm, test_envs)
    result = algorithm.run_training(
        OffPolicyTrainerParams(
            training_collector=train_collector,
            test_collector=test_collector,
            max_epochs=1,
            epoch_num_steps=200,
            collection_step_num_env_steps=10,
            test_step_num_episodes=1,
            batch_size=32,
            stop_fn=lambda mean_rewards: mean_rewards >= env.spec.reward_threshold,  # the stock one
            show_progress=False,
        )
    )
    assert result.train_step >= 1
    for e in (env, train_envs, test_envs):
        e.close()


# -- gymnasium's benchmark -------------------------------------------------------------------------


def test_gymnasium_benchmark_vector_step_runs_on_the_vector_env():
    from gymnasium.utils.performance import benchmark_vector_step

    envs = gym.make_vec("EscapeRoom-v0", num_envs=8, num_threads=1)
    assert benchmark_vector_step(envs, target_duration=0.1) > 0
    envs.close()
