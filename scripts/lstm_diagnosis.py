"""Why the plain LSTM meta-learner stayed at chance (issue 24): short 2-way 1-shot trainings that change one thing.

Each variant trains ``course_lib.sequence_learners``' LSTM (one thread) and records the training step where the
query accuracy (mean of 200 steps) first passes 0.6, and the query accuracy on 1,000 test sequences of Omniglot
Lake, and the embedding spread (the encoder's output, std over 100 test images, mean over features) every
1,000 steps. "own labels" is CS330's format: each support image with its own label, zeros for the queries;
"pixels" feeds the flattened image (the library's ``--encoder pixels``). The table in
data/black_box/lstm_q_2way_1shot/diagnosis.json came from (COURSE_DATA_DIR set, one core)

    python scripts/lstm_diagnosis.py --steps 6000 --only "queries only" "queries only, own labels" "queries only, 2 layers"
    python scripts/lstm_diagnosis.py --steps 3000 --only "queries only, labels x10" ... "queries only, pixels (no encoder)"
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from course_lib import sequence_learners as S
from course_lib.episodes import EpisodeSampler, step_generator

BASE = S.SequenceConfig(model="lstm", ways=2, shots=1)
VARIANTS = {  # name: (config changes, label format)
    "every step (shipped)": ({}, "previous"),
    "queries only": ({"loss_on": "queries"}, "previous"),
    "every step, 2 layers": ({"layers": 2}, "previous"),
    "queries only, 2 layers": ({"loss_on": "queries", "layers": 2}, "previous"),
    "queries only, lr 3e-3": ({"loss_on": "queries", "lr": 3e-3}, "previous"),
    "queries only, lr 3e-4": ({"loss_on": "queries", "lr": 3e-4}, "previous"),
    "queries only, layer norm on the embedding": ({"loss_on": "queries", "embed_norm": True}, "previous"),
    "every step, own labels": ({}, "own"),
    "queries only, own labels": ({"loss_on": "queries"}, "own"),
    "queries only, labels x10": ({"loss_on": "queries"}, "previous x10"),
    "queries only, labels x10, layer norm on the embedding": ({"loss_on": "queries", "embed_norm": True},
                                                              "previous x10"),
    "queries only, pixels (no encoder)": ({"loss_on": "queries", "embed": 784}, "previous pixels"),
    "queries only, pixels, 2 layers": ({"loss_on": "queries", "embed": 784, "layers": 2}, "previous pixels"),
    "every step, pixels": ({"embed": 784}, "previous pixels"),
}


def batch_of(sampler, config, generator, label_format):
    batch = S.sample_sequences(sampler, config.batch_size, generator)
    if label_format.startswith("own"):  # step t shows y_t beside x_t (support steps only)
        batch.label_inputs = F.one_hot(batch.targets, config.ways).float() * (~batch.is_query).unsqueeze(-1)
    if " x" in label_format:  # the label slot scaled up
        batch.label_inputs = batch.label_inputs * float(label_format.split(" x")[1])
    return batch


def embedding_spread(model, images):
    """How much the image embedding varies between images (0: the encoder gives every image the same vector)."""
    with torch.no_grad():
        return model.encoder(images).std(0).mean().item()


def run(name, changes, label_format, steps, data):
    config = dataclasses.replace(BASE, steps=steps, **changes)
    torch.manual_seed(config.seed)
    model = S.build(config)
    if label_format.endswith("pixels"):  # CS330's input: the flattened image itself, no convolutions
        model.encoder = torch.nn.Flatten()
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    sampler = EpisodeSampler(data["train"], config.ways, config.shots, config.queries)
    probe = data["test"].images[:500:5]
    spread = {0: embedding_spread(model, probe)}
    accuracy, losses, started = [], [], time.process_time()
    for i in range(steps):
        loss, metrics = S.sequence_loss(model, batch_of(sampler, config, step_generator(config.seed, i), label_format),
                                        config.loss_on)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        accuracy.append(metrics["query_accuracy"])
        losses.append(metrics["loss"])
        if (i + 1) % 1000 == 0:
            spread[i + 1] = embedding_spread(model, probe)
    smoothed = torch.tensor(accuracy).unfold(0, 200, 1).mean(1) if steps >= 200 else torch.tensor([])
    passed = (smoothed > 0.6).nonzero()
    model.eval()
    test = EpisodeSampler(data["test"], config.ways, config.shots, 1)
    generator, correct = torch.Generator().manual_seed(0), []
    with torch.no_grad():
        for _ in range(10):  # 10 x 100 test sequences
            batch = batch_of(test, dataclasses.replace(config, batch_size=100), generator, label_format)
            correct.append((S.sequence_logits(model, batch).argmax(-1) == batch.targets)[batch.is_query].float())
    return {"variant": name, "steps": steps, "left_chance_at_step": int(passed[0]) + 200 if len(passed) else None,
            "train_query_accuracy_last_500": sum(accuracy[-500:]) / len(accuracy[-500:]),
            "loss_last_500": sum(losses[-500:]) / len(losses[-500:]),
            "test_query_accuracy": torch.cat(correct).mean().item(), "cpu_seconds": time.process_time() - started,
            "embedding_spread": spread,
            "curve_every_100": [round(sum(accuracy[j:j + 100]) / len(accuracy[j:j + 100]), 3)
                                for j in range(0, steps, 100)]}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=6000)
    parser.add_argument("--only", nargs="*", help="variant names (default: all)")
    parser.add_argument("--out", type=Path, default=Path("lstm_diagnosis.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    data = S.load_data(BASE)
    results = json.loads(args.out.read_text()) if args.out.is_file() else {}
    for name in args.only or VARIANTS:
        results[name] = run(name, *VARIANTS[name], args.steps, data)
        args.out.write_text(json.dumps(results, indent=1))  # after each variant: a stopped script keeps the rest
        r = results[name]
        print(f"{name:45s} left chance at {r['left_chance_at_step']}, test {r['test_query_accuracy']:.3f}, "
              f"loss {r['loss_last_500']:.3f}, {r['cpu_seconds']:.0f} s, embedding spread "
              f"{r['embedding_spread'][0]:.3f} -> {r['embedding_spread'][max(r['embedding_spread'])]:.3f}", flush=True)


if __name__ == "__main__":
    main()
