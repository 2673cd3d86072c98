import ExampleParticipants
import PostgresNIO
import SagaCore
import SagaParticipant
import SagaProtocol

// The shipping service: `shipping.ship` hands the parcel to the carrier (one row per shipment).
// Shipping is the saga's pivot: it has no compensation.
let participant = ExampleParticipant(name: "shipping")
try await participant.run(
    setup: "CREATE TABLE IF NOT EXISTS shipping_shipments (saga_id text PRIMARY KEY, tracking text NOT NULL)"
) { context in
    let command = context.command
    guard command.commandType == "shipping.ship" else {
        return .failure(StepError(code: "UNKNOWN_COMMAND", message: command.commandType, retryable: false))
    }
    let tracking = "t-\(command.sagaID.prefix(8))"
    try await context.connection.query(
        "INSERT INTO shipping_shipments (saga_id, tracking) VALUES (\(command.sagaID), \(tracking))",
        logger: context.logger)
    return .success(result: ["tracking": .string(tracking)])
}
