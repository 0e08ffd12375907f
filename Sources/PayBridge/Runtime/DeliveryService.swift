import Foundation
import ServiceLifecycle

/// Runs the dispatcher until a graceful shutdown, then gives in-flight deliveries `grace`.
struct DeliveryService: Service {
    let dispatcher: Dispatcher
    let grace: Duration

    func run() async throws {
        await withTaskCancellationHandler {
            await withGracefulShutdownHandler {
                await dispatcher.run(.continuous)
            } onGracefulShutdown: {
                dispatcher.stop(grace: grace)
            }
        } onCancel: {
            dispatcher.stop(grace: .zero)
        }
    }
}
