import ArgumentParser
import CMalloc
import Hummingbird
import Logging
import Metrics
import Prometheus
import ServiceLifecycle
import Waitlist
import WaitlistCore
import WaitlistDelivery
import WaitlistMail
import WaitlistStore
import WaitlistWeb

/// `waitlist serve`: the web service and its mail worker.
struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the web service and its mail worker.")

    @Option(name: .long, help: "The address to listen on.")
    var hostname = "127.0.0.1"

    @Option(name: .long, help: "The port to listen on.")
    var port = 8080

    func validate() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port must be from 0 to 65535.") }
    }

    func run() async throws {
        keepFreedMemory()
        try await withRuntime(signsMail: true) { runtime in
            try runtime.database.checkIntegrity(path: runtime.settings.databasePath)
            let metrics = PrometheusCollectorRegistry()
            MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: metrics))
            runtime.logger.info(
                "Serving",
                metadata: [
                    "address": "http://\(hostname):\(port)", "database": "\(runtime.settings.databasePath)",
                    "mail": "\(runtime.transportDescription)",
                ])
            let app = try runtime.makeService(hostname: hostname, port: port, metrics: metrics)
            do {
                try await app.runService()
            } catch {
                throw WaitlistError(.unavailable, "The service stopped: \(error).")
            }
        }
    }
}

/// Asks glibc to keep memory it gets back instead of handing it to the kernel at once: SQLite
/// frees and allocates memory around every transaction, and with glibc's defaults the signup
/// writer's thread gave it back (`madvise`) and faulted it in again each time. Keeping up to
/// 64 MiB at the top of a heap, and growing heaps 16 MiB at a time, cut the server's CPU per
/// durable signup by about a quarter in `bench/`'s measurements (see bench/README.md); memory
/// the process used once stays its own, as with most allocators.
private func keepFreedMemory() {
    _ = mallopt(M_TRIM_THRESHOLD, 64 << 20)
    _ = mallopt(M_TOP_PAD, 16 << 20)
}
