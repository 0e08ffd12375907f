import ArgumentParser
import Foundation
import Logging
import Metrics
import PayBridge
import Prometheus
import ServiceLifecycle

struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Poll on every watch's interval and deliver continuously until SIGINT or SIGTERM.",
        discussion: "Without --config, runs the demo: the sandbox bank in-process and a console endpoint.")

    @Option(name: .long, help: "The config file (omit it for the demo).")
    var config: String?

    @OptionGroup var common: CommonOptions

    func run() async throws {
        let logger = common.bootstrapLogging()
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        let configuration: Configuration
        if let config {
            configuration = try loadConfiguration(config)
        } else {
            configuration = try DemoSandbox.demoConfiguration()
            logger.info("no --config: running the demo (sandbox bank in-process, events printed below)",
                        metadata: ["state": "\(configuration.state.path)"])
        }
        let sandbox = try await DemoSandbox.startIfNeeded(for: configuration, logger: logger, demo: config == nil)
        let bridge: Bridge
        do {
            bridge = try Bridge(configuration: configuration, apiURL: sandbox?.apiURL, logger: logger)
        } catch {
            printError("error: \(error)")
            throw ExitCode(1)
        }
        var services = bridge.services()
        if let listen = configuration.adminListen {
            services.insert(AdminServer.application(listen: listen, bridge: bridge, registry: registry, logger: logger), at: 0)
        }
        let group = ServiceGroup(
            configuration: ServiceGroupConfiguration(
                services: services.map { ServiceGroupConfiguration.ServiceConfiguration(service: $0) },
                gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        do {
            try await group.run()
        } catch {
            logger.error("stopped on an error", metadata: ["error": "\(error)"])
        }
        bridge.close()
        await sandbox?.stop()
        logger.info("stopped")
    }
}
