import Benchmark
import SagaBenchmarkSupport
import SagaCore

let benchmarks: @Sendable () -> Void = {
    // Time is measured over 1,000 sagas per sample so the harness's own cost per sample is noise;
    // allocations are counted in a separate run, since counting them slows every allocation.
    let timed = Benchmark.Configuration(
        metrics: [.wallClock, .throughput], warmupIterations: 10, scalingFactor: .kilo, maxDuration: .seconds(3),
        maxIterations: 100_000)
    let counted = Benchmark.Configuration(
        metrics: [.mallocCountTotal], warmupIterations: 10, maxDuration: .seconds(1), maxIterations: 1_000)

    // One saga that completes: 6 transitions (start, four replies, a signal).
    Benchmark("completing saga (6 transitions) x1000", configuration: timed) { benchmark in
        for _ in benchmark.scaledIterations { blackHole(run(happyEvents)) }
    }
    Benchmark("completing saga (6 transitions), allocations", configuration: counted) { benchmark in
        for _ in benchmark.scaledIterations { blackHole(run(happyEvents)) }
    }

    // The fixed cost of one transition: an event that changes nothing (a timer no longer set).
    let waiting = run(Array(happyEvents.prefix(1)))
    let stale = SagaEvent.timerFired(timerID: "no-such-timer")
    Benchmark("one transition that changes nothing x1000", configuration: timed) { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(SagaMachine.apply(stale, to: waiting, definition: definition, now: now))
        }
    }

    // One reply that completes a step and starts the next: the most common transition.
    let replyEvent = happyEvents[1]
    Benchmark("one reply that starts the next step x1000", configuration: timed) { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(SagaMachine.apply(replyEvent, to: waiting, definition: definition, now: now))
        }
    }

    // One saga that fails at its second step and compensates the first: 4 transitions.
    Benchmark("compensating saga (4 transitions) x1000", configuration: timed) { benchmark in
        for _ in benchmark.scaledIterations { blackHole(run(compensationEvents)) }
    }
    Benchmark("compensating saga (4 transitions), allocations", configuration: counted) { benchmark in
        for _ in benchmark.scaledIterations { blackHole(run(compensationEvents)) }
    }
}
