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
        // A state folder that cannot be opened (read-only, full, locked) is waited out: the
        // operator sees one line and paybridge starts as soon as it clears.
        var opened: Bridge?
        var announced = false
        while opened == nil {
            do {
                opened = try Bridge(configuration: configuration, apiURL: sandbox?.apiURL, logger: logger)
            } catch {
                if !announced {
                    logger.error("\(error); retrying every 2 s until it opens")
                    announced = true
                }
                try await Task.sleep(for: .seconds(2))
            }
        }
        guard let bridge = opened else { return }
        if announced { logger.notice("state database opened") }
        var services = bridge.services()
        if let listen = configuration.adminListen {
            services.insert(AdminServer.application(listen: listen, bridge: bridge, registry: registry, logger: logger), at: 0)
        }
        let group = ServiceGroup(
            configuration: ServiceGroupConfiguration(
                services: services.map { ServiceGroupConfiguration.ServiceConfiguration(service: $0) },
                gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        logger.info(
            "started", metadata: ["watches": "\(configuration.source.watches.count)", "endpoints": "\(configuration.endpoints.count)"])
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
