import Foundation
import SagaBenchmarkSupport
import SagaCore

// Runs the completing saga of the SagaCore benchmarks in a plain loop and prints transitions per
// second. Without the benchmark harness it can run under `valgrind --tool=callgrind`, whose
// instruction counts do not vary with the machine's load:
//   swift build --package-path Benchmarks -c release --product saga-machine-loop
//   valgrind --tool=callgrind Benchmarks/.build/release/saga-machine-loop 2000
let sagas = Int(CommandLine.arguments.dropFirst().first ?? "200000") ?? 200_000
var completed = 0
let elapsed = ContinuousClock().measure {
    for _ in 0..<sagas where run(happyEvents).status == .completed { completed += 1 }
}
let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
let transitions = sagas * (happyEvents.count + 1)
print(
    "\(sagas) sagas (\(completed) completed), \(transitions) transitions in \(seconds) s: \(Int(Double(transitions) / seconds)) transitions/s"
)
