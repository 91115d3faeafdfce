"""Many students train at once in one server process: two trainings in two threads share nothing. Each draws its
weights, batches and samples from generators of its own, so its curve is the one it has alone, whatever runs
beside it (torch's global random state is never used, and is left as it was)."""
import threading

import torch

from explorer.labs.training import TrainingSettings, prepare

SMALL = dict(n_layer=1, d_model=32, n_head=2, n_kv_head=2, context=16, batch_size=4, steps=25, eval_every=5,
             sample_every=10, corpus="shakespeare")


def curve(settings: TrainingSettings) -> list[tuple]:
    trainer = prepare(settings).result
    return [(s.step, s.loss, s.val_loss, tuple(s.grad_norms.values()), s.sample) for s in trainer.steps()]


def concurrently(*settings: TrainingSettings) -> list[list[tuple]]:
    results: list = [None] * len(settings)
    barrier = threading.Barrier(len(settings))

    def work(i: int) -> None:
        barrier.wait()  # start together, so their steps interleave
        results[i] = curve(settings[i])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(settings))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    return results


def test_two_trainings_at_once_give_their_own_curves():
    a = TrainingSettings(**SMALL, seed=0)
    b = TrainingSettings(**{**SMALL, "norm": "rmsnorm", "lr": 1e-2}, seed=5)
    alone_a, alone_b = curve(a), curve(b)
    global_state = torch.random.get_rng_state()
    together_a, together_b = concurrently(a, b)
    assert together_a == alone_a and together_b == alone_b  # exactly: the same float operations in each thread
    assert alone_a != alone_b
    assert torch.equal(torch.random.get_rng_state(), global_state)


def test_the_same_seed_in_two_threads_gives_the_same_curve():
    a = TrainingSettings(**SMALL, seed=3)
    first, second = concurrently(a, a)
    assert first == second == curve(a)
