import ArgumentParser
import PayBridge

struct Poll: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Poll every watch once, deliver what is due now, and exit (non-zero when a poll failed).",
        discussion: """
            For cron and tests; `paybridge run` polls continuously. Deliveries whose retry is due later stay queued.
            Example: paybridge poll --once --config paybridge.yaml
            """)

    @Flag(name: .long, help: "Poll once and exit (required: continuous polling is `paybridge run`).")
    var once = false

    @Option(name: .long, help: ArgumentHelp("The config file.", discussion: configDefaults))
    var config: String?

    @OptionGroup var common: CommonOptions

    func validate() throws {
        guard once else { throw ValidationError("poll needs --once (to poll continuously, use `paybridge run --config \(config ?? "FILE")`)") }
    }

    func run() async throws {
        let logger = common.bootstrapLogging()
        let configuration = try loadConfiguration(configPath(config), warnings: common.showsWarnings, logger: common.logsJSON ? logger : nil)
        let lock: StateLock?
        do {
            lock = try lockState(configuration)
        } catch {
            printError(error.message(configuration))
            throw ExitCode(1)
        }
        defer { withExtendedLifetime(lock) {} }
        let sandbox = try await DemoSandbox.startIfNeeded(for: configuration, logger: logger)
        let bridge: Bridge
        do {
            bridge = try await Bridge(configuration: configuration, apiURL: sandbox?.apiURL, logger: logger, clock: .fromEnvironment())
        } catch {
            printError("error: \(error)")
            throw ExitCode(1)
        }
        await announceResume(after: lock, bridge: bridge, logger: logger)
        let result = await bridge.pollOnce()
        bridge.close()
        await sandbox?.stop()
        lock?.markStopped()
        for failure in result.failures { printError("poll failed: \(failure)", metadata: failure.requestId.map { ["requestId": "\($0)"] } ?? [:]) }
        if !result.failures.isEmpty { throw ExitCode(1) }
    }
}
