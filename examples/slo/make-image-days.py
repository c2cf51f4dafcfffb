#!/usr/bin/env python3
"""Writes a jobs trace (timestamp,work_seconds) of an image-generation service over several
days, to standard output: arrivals follow a daily shape (a quiet night, a morning ramp, an afternoon
peak, an evening fall), quieter weekends, each day busier or quieter than the last by
chance, and a few short bursts a day; a job takes 4 to 30 s on one GPU (log-normal, median 9 s).
The same seed writes the same trace.

    python3 examples/slo/make-image-days.py --days 10 > image-days.csv
"""
import argparse
import math
import random


def daily_shape(hour, ramp):
    """Requests a second at each hour of the day, relative to the day's busiest hour."""
    night = 0.08
    # The morning ramp, `ramp` hours up to 10:00; the afternoon peak at 15:00; the fall to 23:00.
    if hour < 10 - ramp:
        return night
    if hour < 10:
        x = (hour - 10 + ramp) / ramp
        return night + (0.85 - night) * (x * x * (3 - 2 * x))
    if hour < 15:
        return 0.85 + 0.15 * math.sin(math.pi / 2 * (hour - 10) / 5)
    if hour < 23:
        x = (hour - 15) / 8
        return night + (1 - night) * (1 - x * x * (3 - 2 * x))
    return night


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=10)
    parser.add_argument("--peak", type=float, default=1.5, help="requests a second at a weekday's busiest hour")
    parser.add_argument("--ramp", type=float, default=180, help="minutes the morning ramp takes, ending at 10:00")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--start", type=float, default=1_700_006_400, help="the first day's midnight, UTC")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    print("timestamp,work_seconds")
    for day in range(args.days):
        midnight = args.start + day * 86_400
        weekend = day % 7 in (5, 6)
        level = args.peak * (0.55 if weekend else 1.0) * rng.lognormvariate(0, 0.12)
        bursts = [(rng.uniform(8, 21) * 3600, rng.uniform(300, 900), rng.uniform(1.5, 2.5)) for _ in range(3)]
        t = 0.0
        # Thinning: draw at the day's highest rate and keep each arrival with rate / highest.
        highest = level * 2.5
        while True:
            t += rng.expovariate(highest)
            if t >= 86_400:
                break
            rate = level * daily_shape(t / 3600, args.ramp / 60)
            for begin, length, factor in bursts:
                if begin <= t < begin + length:
                    rate *= factor
            if rng.random() < rate / highest:
                work = min(max(rng.lognormvariate(math.log(9), 0.45), 4), 30)
                print(f"{midnight + t:.3f},{work:.2f}")


if __name__ == "__main__":
    main()
