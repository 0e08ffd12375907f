import ArgumentParser
import Foundation
import Logging
import PayBridge
import Sandbox
import ServiceLifecycle

struct SandboxCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sandbox",
        abstract: "Serve a simulated Banking Circle API (auth, payments, notification subscriptions) on 127.0.0.1.",
        discussion: """
            Subscriptions made through its Notification Self Service \
            (/api/v1/notificationselfservice/: subscription, subscriptionEvent, clienttest/{id}) \
            receive encrypted notifications of the sandbox's own status changes, pushed as the bank \
            pushes them and retried on the bank's schedule.

            Examples:
              paybridge sandbox --port 0                         a free port, printed
              paybridge sandbox --port 8090 --initial-payments 200 --new-payment-every 1s
            """)

    @Option(name: .long, help: "Port to listen on (0 picks a free one and prints it).")
    var port: Int = 8090

    @Option(name: .long, help: "Login accepted by the authorize call.")
    var username = "sandbox"

    @Option(name: .long, help: "Password accepted by the authorize call.")
    var password = "sandbox"

    @Option(name: .long, help: "Token lifetime, e.g. 300s.")
    var tokenLifetime = "300s"

    @Option(name: .long, help: "Payments present at start.")
    var initialPayments = 20

    @Option(name: .long, help: "A new payment arrives this often (0s for none).")
    var newPaymentEvery = "3s"

    @Option(name: .long, help: "Seed of ids and amounts.")
    var seed: UInt64 = UInt64(Date().timeIntervalSince1970)

    @Option(
        name: .long,
        help: "AISP/PISP access: a QSEAL certificate (PEM); every call must then be signed with its key (Digest, Signature, TPP-Signature-Certificate).")
    var requireSignature: String?

    @Option(name: .long, help: "With --require-signature: every call must carry this PSU-ID, signed.")
    var requirePsuId: String?

    @Option(
        name: .long,
        help: ArgumentHelp(
            "Multiplies the waits between retries of a notification the endpoint did not take (15s, 30s, 1m, 10m, 30m, 1h, 2h, 6h, 12h, 24h, 48h, then the subscription is deactivated): 0.01 makes 15s into 0.15s.",
            valueName: "number"))
    var notificationRetryScale: Double = 1

    @OptionGroup var common: CommonOptions

    func run() async throws {
        let logger = common.bootstrapLogging()
        guard let lifetime = DurationText.parse(tokenLifetime), lifetime > .zero else {
            throw ValidationError("--token-lifetime: write a duration like 300s")
        }
        guard let every = DurationText.parse(newPaymentEvery) else {
            throw ValidationError("--new-payment-every: write a duration like 3s")
        }
        var signature: SignatureRequirement?
        if let requireSignature {
            guard let text = try? String(contentsOfFile: requireSignature, encoding: .utf8) else {
                throw ValidationError("--require-signature: cannot read \(requireSignature)")
            }
            do {
                signature = try SignatureRequirement(certificatePEM: text, psuId: requirePsuId)
            } catch {
                throw ValidationError("--require-signature: \(requireSignature): \(error)")
            }
        } else if requirePsuId != nil {
            throw ValidationError("--require-psu-id goes with --require-signature")
        }
        guard notificationRetryScale.isFinite, notificationRetryScale >= 0 else {
            throw ValidationError("--notification-retry-scale: write a number of 0 or more, e.g. 0.01")
        }
        let bank = SandboxBank(
            options: SandboxOptions(
                username: username, password: password, tokenLifetime: lifetime, initialPayments: initialPayments,
                newPaymentEvery: every > .zero ? every : nil, seed: seed, signature: signature,
                notificationRetryScale: notificationRetryScale))
        let server = SandboxServer.application(bank: bank, port: port) { port in
            logger.info("sandbox listening", metadata: ["url": "http://127.0.0.1:\(port)"])
            // Written unbuffered: a script reading this from a pipe needs the port at once.
            FileHandle.standardOutput.write(Data("sandbox listening on http://127.0.0.1:\(port)\n".utf8))
        }
        let group = ServiceGroup(
            configuration: ServiceGroupConfiguration(
                services: [ServiceGroupConfiguration.ServiceConfiguration(service: server)],
                gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
    }
}
