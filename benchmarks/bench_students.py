"""Student training throughput: images/s per student, one at a time vs several at once
(stingy.empirical.batched, vmap and loop), with the teacher read from a logit bank vs run on
every batch. ``stingy bench`` (benchmarks/run.py) calls :func:`bench_students`.

Each case trains for ``steps`` optimizer steps after ``warmup`` on random 32x32 images; the
"teacher" cases run the teacher model forward on each batch as the plain engine does, the
"bank" cases read logits precomputed for the epoch (the bank's one-off teacher pass is timed
separately and reported as ``bank_build_seconds_per_image``).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import torch

from stingy.empirical.bank import AugmentStream, LogitBank
from stingy.empirical.batched import GroupSettings, Student, train_group
from stingy.empirical.engine import DeviceData
from stingy.empirical.models import build_model
from stingy.methods import METHODS, MethodSettings

MEAN, STD = (0.49, 0.48, 0.45), (0.25, 0.24, 0.26)


def _data(images: int, device, seed: int = 0) -> DeviceData:
    generator = torch.Generator().manual_seed(seed)
    pixels = torch.randint(0, 256, (images, 32, 32, 3), dtype=torch.uint8, generator=generator)
    labels = torch.randint(0, 10, (images,), generator=generator)
    return DeviceData(pixels, labels, MEAN, STD, device)


def _time_group(model: str, students: list[Student], data, stream, banks, device, epochs,
                mode: str) -> float:
    settings = GroupSettings(model, epochs, stream.batch_size, 0.05, mode=mode)
    began = time.perf_counter()
    result = train_group(settings, students, data, stream, banks, num_classes=10, init_seed=0,
                         device=device)
    result["group"].predict(data)
    _synchronize(device)
    return time.perf_counter() - began


def _synchronize(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def bench_students(model: str = "cnn", teacher_model: str = "cnn", group_size: int = 4,
                   images: int = 512, batch_size: int = 64, epochs: int = 2,
                   device: str = "cpu") -> dict:
    """Images/s per student for: one scratch student; one KD student (bank); G KD students
    at once (vmap and loop, bank); and one KD student running the teacher per batch.

    Per-student images/s = epochs * images / wall seconds (for G students trained together
    the aggregate rate is G times that). Wall time includes evaluation on ``images`` test
    images (the same random set) once at the end.
    """
    device = torch.device(device)
    data = _data(images, device)
    stream = AugmentStream(0, batch_size)
    torch.manual_seed(1)
    teacher = build_model(teacher_model, 10).to(device).eval()
    bank = LogitBank(Path(tempfile.mkdtemp(prefix="stingy-bench-bank-")), teacher, data, stream)
    began = time.perf_counter()
    for epoch in range(epochs):
        bank.epoch(epoch, device)  # computed once and written; the cases below read it
    bank_seconds = time.perf_counter() - began
    kd = [Student(f"kd{g}", MethodSettings("normal_kd", 4.0), "teacher")
          for g in range(group_size)]
    cases = []

    def case(name, students, mode, seconds):
        per_student = epochs * images / seconds
        cases.append({"case": name, "students": len(students), "mode": mode,
                      "seconds": seconds, "images_per_second_per_student": per_student,
                      "aggregate_images_per_second": per_student * len(students)})

    banks = {"teacher": bank}
    for mode in ("loop", "vmap"):  # warm-up: first calls pay one-off allocation costs
        _time_group(model, kd[:2], data, stream, banks, device, 1, mode)
    scratch = [Student("s", MethodSettings("scratch"))]
    case("scratch, one student", scratch, "loop",
         _time_group(model, scratch, data, stream, {}, device, epochs, "loop"))
    case("KD from bank, one student", kd[:1], "loop",
         _time_group(model, kd[:1], data, stream, banks, device, epochs, "loop"))
    for mode in ("vmap", "loop"):
        case(f"KD from bank, {group_size} at once", kd, mode,
             _time_group(model, kd, data, stream, banks, device, epochs, mode))
    case("KD, teacher run per batch, one student", kd[:1], "loop",
         _time_teacher_per_batch(model, teacher, data, stream, device, epochs))
    shutil.rmtree(bank.directory.parent, ignore_errors=True)
    return {"model": model, "teacher": teacher_model, "images": images,
            "batch_size": batch_size, "epochs": epochs, "device": str(device),
            "threads": torch.get_num_threads(),
            "bank_build_seconds_per_image": bank_seconds / (epochs * images), "cases": cases}


def _time_teacher_per_batch(model, teacher, data, stream, device, epochs) -> float:
    """One KD student whose teacher logits come from a teacher forward on every batch."""
    objective = METHODS["normal_kd"].objective(MethodSettings("normal_kd", 4.0, 0.9), 10)

    torch.manual_seed(0)
    on_cuda = torch.device(device).type == "cuda"  # as the groups: bf16, channels_last
    memory_format = torch.channels_last if on_cuda else torch.contiguous_format
    student = build_model(model, 10).to(device, memory_format=memory_format)
    teacher = teacher.to(memory_format=memory_format)
    optimizer = torch.optim.SGD(student.parameters(), lr=0.05, momentum=0.9, nesterov=True)
    began = time.perf_counter()
    for epoch in range(epochs):
        for _, images, labels in stream.batches(data, epoch, channels_last=on_cuda):
            with torch.inference_mode(), torch.autocast("cuda", torch.bfloat16, enabled=on_cuda):
                teacher_logits = teacher(images).float()
            with torch.autocast("cuda", torch.bfloat16, enabled=on_cuda):
                logits = student(images)
            loss = objective(logits, teacher_logits.clone(), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    student.eval()
    with torch.inference_mode():
        student(data.batch(torch.arange(len(data)))[0])
    _synchronize(device)
    return time.perf_counter() - began


def students_markdown(result: dict) -> str:
    """The cases as a Markdown table."""
    heading = (f"Student training, {result['model']} students, {result['teacher']} teacher, "
               f"{result['device']}, {result['threads']} thread(s), batch "
               f"{result['batch_size']}, {result['images']} images x {result['epochs']} "
               f"epochs; bank build {1e3 * result['bank_build_seconds_per_image']:.2f} ms/image.")
    lines = [heading, "",
             "| case | mode | students | images/s per student | aggregate images/s |",
             "|---|---|---|---|---|"]
    for case in result["cases"]:
        lines.append(f"| {case['case']} | {case['mode']} | {case['students']} | "
                     f"{case['images_per_second_per_student']:.0f} | "
                     f"{case['aggregate_images_per_second']:.0f} |")
    return "\n".join(lines)
