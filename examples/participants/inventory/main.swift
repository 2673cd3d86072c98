import ExampleParticipants
import PostgresNIO
import SagaCore
import SagaParticipant
import SagaProtocol

// The inventory service: `inventory.reserve` takes the order's items out of stock (one row per
// reservation), `inventory.release` puts them back.
let participant = ExampleParticipant(name: "inventory")
try await participant.run(
    setup: """
        CREATE TABLE IF NOT EXISTS inventory_reservations (
            saga_id text PRIMARY KEY, order_id text, released boolean NOT NULL DEFAULT false)
        """
) { context in
    let command = context.command
    let orderID = command.payload["input"]?["orderId"]?.stringValue ?? ""
    switch command.commandType {
    case "inventory.reserve":
        try await context.connection.query(
            "INSERT INTO inventory_reservations (saga_id, order_id) VALUES (\(command.sagaID), \(orderID))",
            logger: context.logger)
        return .success(result: ["reservationId": .string("r-\(command.sagaID)")])
    case "inventory.release":
        try await context.connection.query(
            "UPDATE inventory_reservations SET released = true WHERE saga_id = \(command.sagaID)",
            logger: context.logger)
        return .success(result: ["released": true])
    default:
        return .failure(StepError(code: "UNKNOWN_COMMAND", message: command.commandType, retryable: false))
    }
}
