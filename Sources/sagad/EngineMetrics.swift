import Kafka
import Metrics
import SagaCore
import SagaEngine
import SagaStore

/// The engine's metrics (swift-metrics, exported for Prometheus on `/metrics`).
struct EngineMetrics: Sendable {
    let batchSize = Recorder(label: "saga_inbound_batch_size")
    let messages = Counter(label: "saga_inbound_messages_total")
    let duplicates = Counter(label: "saga_inbound_duplicates_total")
    let deadLetters = Counter(label: "saga_dead_letters_total")
    let published = Counter(label: "saga_outbox_published_total")
    let notAcknowledged = Counter(label: "saga_outbox_not_acknowledged_total")
    let timersFired = Counter(label: "saga_timers_fired_total")
    let outboxBacklog = Gauge(label: "saga_outbox_backlog_rows")
    let outboxOldest = Gauge(label: "saga_outbox_oldest_age_seconds")
    let timerLag = Gauge(label: "saga_timer_lag_seconds")
    let stuck = Gauge(label: "saga_stuck_sagas")
    let parked = Gauge(label: "saga_parked_sagas")
    let consumerLag = Gauge(label: "saga_consumer_lag_messages")

    func record(_ report: InboundBatchReport) {
        batchSize.record(report.messages)
        messages.increment(by: report.messages)
        duplicates.increment(by: report.duplicates)
        deadLetters.increment(by: report.deadLettered)
        for (type, count) in report.started {
            Counter(label: "saga_started_total", dimensions: [("type", type)]).increment(by: count)
        }
        recordOutcomes(finished: report.finished, steps: report.stepsCompleted)
        for note in report.notes {
            Counter(label: "saga_notes_total", dimensions: [("kind", note.kind.rawValue)]).increment()
        }
    }

    func recordTimers(fired: Int, plan: BatchPlan) {
        timersFired.increment(by: fired)
        recordOutcomes(finished: plan.finished, steps: plan.stepsCompleted)
    }

    func recordOutcomes(
        finished: [(sagaType: String, status: SagaStatus, milliseconds: Int64)],
        steps: [(sagaType: String, step: String, milliseconds: Int64)]
    ) {
        for saga in finished {
            let dimensions = [("type", saga.sagaType), ("status", saga.status.rawValue)]
            Counter(label: "saga_finished_total", dimensions: dimensions).increment()
            Timer(label: "saga_duration_seconds", dimensions: dimensions).recordMilliseconds(saga.milliseconds)
        }
        for step in steps {
            Timer(label: "saga_step_duration_seconds", dimensions: [("type", step.sagaType), ("step", step.step)])
                .recordMilliseconds(step.milliseconds)
        }
    }

    func recordRelay(read: Int, published count: Int) {
        published.increment(by: count)
        notAcknowledged.increment(by: read - count)
    }

    /// Samples what is read from the database (backlog, timer lag, stuck sagas) every `interval`,
    /// and updates the readiness the samples tell, until the task is cancelled.
    func sample(
        store: SagaStore, consumer: KafkaConsumer, producer: KafkaProducer, every interval: Duration, health: Health
    ) async {
        // The first sample after a second: the store's pool starts beside this.
        try? await Task.sleep(for: .seconds(1))
        while !Task.isCancelled {
            let now = SagaTimestamp.now
            do {
                try await store.ping()
                health.setDatabase(true)
                let backlog = try await store.outboxBacklog(now: now)
                outboxBacklog.record(backlog.rows)
                outboxOldest.record(Double(backlog.oldestAge) / 1000)
                timerLag.record(Double(try await store.oldestDueTimerLag(now: now)) / 1000)
                stuck.record(try await store.stuckSagaCount())
                parked.record(try await store.parkedSagaCount())
            } catch {
                health.setDatabase(false)
            }
            health.setProducer(producer.fatalError == nil)
            consumerLag.record(consumer.lag().values.reduce(0, +))
            try? await Task.sleep(for: interval)
        }
    }
}
