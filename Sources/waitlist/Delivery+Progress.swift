import Dispatch
import Foundation
import NIOConcurrencyHelpers
import Waitlist
import WaitlistCore
import WaitlistDelivery
import WaitlistMail
import WaitlistStore
import WaitlistWeb

/// Shows a delivery's progress: a redrawn bar on a terminal, a plain line every few seconds otherwise.
final class ProgressDisplay: Sendable {
    private struct Counts {
        var sent = 0
        var retry = 0
        var failed = 0
        /// Sent by another process holding the sending role, as far as this one has seen.
        var elsewhere = 0
        var watching = false
        var lastDraw = Date.distantPast
    }

    let total: Int
    let started = Date()
    let onTerminal: Bool
    private let counts: NIOLockedValueBox<Counts>

    init(total: Int, onTerminal: Bool) {
        self.total = max(total, 0)
        self.onTerminal = onTerminal
        self.counts = NIOLockedValueBox(Counts(lastDraw: started))
    }

    /// Records one delivery's outcome, or what is left while another process sends (called from
    /// the sender's threads), and redraws when due.
    ///
    /// Drawing happens under the lock, so lines from different threads never interleave.
    func record(_ progress: OutboxSender.Progress) {
        let firstWait = counts.withLockedValue { counts in
            switch progress {
            case .delivered(.sent): counts.sent += 1
            case .delivered(.retryLater): counts.retry += 1
            case .delivered(.failed): counts.failed += 1
            case .anotherSenderWorks(let due):
                defer { counts.elsewhere = max(counts.elsewhere, total - due - counts.sent - counts.retry - counts.failed) }
                if !counts.watching {
                    counts.watching = true
                    return true
                }
            }
            let now = Date()
            guard now.timeIntervalSince(counts.lastDraw) >= (onTerminal ? 0.1 : 5) else { return false }
            counts.lastDraw = now
            draw(render(counts, now: now))
            return false
        }
        if firstWait { note("Another waitlist process is sending (the server's worker, or another `send`); showing its progress.") }
    }

    /// Writes a line of its own; on a terminal the bar is drawn again below it at the next redraw.
    func note(_ text: String) {
        counts.withLockedValue { _ in
            FileHandle.standardError.write(Data(((onTerminal ? "\r\u{1B}[K" : "") + text + "\n").utf8))
        }
    }

    /// Draws the final state and ends the line.
    func finish() {
        counts.withLockedValue { counts in
            draw(render(counts, now: Date()))
            if onTerminal { FileHandle.standardError.write(Data("\n".utf8)) }
        }
    }

    private func draw(_ line: String) {
        if onTerminal {
            FileHandle.standardError.write(Data("\r\u{1B}[K\(line)".utf8))
        } else {
            FileHandle.standardError.write(Data("\(line)\n".utf8))
        }
    }

    private func render(_ counts: Counts, now: Date) -> String {
        let done = counts.sent + counts.elsewhere + counts.retry + counts.failed
        let elapsed = max(now.timeIntervalSince(started), 0.001)
        let rate = Double(done) / elapsed
        var parts = ["\(counts.sent + counts.elsewhere)/\(total) sent"]
        if counts.retry > 0 { parts.append("\(counts.retry) to retry") }
        if counts.failed > 0 { parts.append("\(counts.failed) refused") }
        parts.append(String(format: "%.1f/s", rate))
        if rate > 0, total > done { parts.append("about \(Self.duration(Double(total - done) / rate)) left") }
        let summary = parts.joined(separator: "  ")
        guard onTerminal, total > 0 else { return summary }
        let width = 30
        let filled = min(width, Int(Double(width) * Double(done) / Double(total)))
        return "[" + String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled) + "] " + summary
    }

    static func duration(_ seconds: Double) -> String {
        let whole = Int(seconds.rounded(.up))
        if whole < 60 { return "\(whole)s" }
        if whole < 3600 { return "\(whole / 60)m\(String(format: "%02d", whole % 60))s" }
        return "\(whole / 3600)h\(String(format: "%02d", whole / 60 % 60))m"
    }
}

/// Delivers everything queued and due with progress on stderr; Ctrl-C stops after the messages
/// in flight. Exits 75 when mail is left for a later try, 69 when the relay could not be reached.
func deliverQueued(_ runtime: Runtime) async throws {
    let total = try runtime.database.backlog().ready
    let sender = runtime.makeSender()
    let display = ProgressDisplay(total: total, onTerminal: isTerminal(STDERR_FILENO))
    signal(SIGINT, SIG_IGN)
    let interrupt = DispatchSource.makeSignalSource(signal: SIGINT, queue: .global())
    let interrupted = NIOLockedValueBox(false)
    interrupt.setEventHandler {
        let first = interrupted.withLockedValue { wasInterrupted in
            defer { wasInterrupted = true }
            return !wasInterrupted
        }
        guard first else { return }
        sender.stop()
        display.note("Stopping after the messages in flight…")
    }
    interrupt.resume()
    defer {
        interrupt.cancel()
        signal(SIGINT, SIG_DFL)
    }
    let summary = try await sender.run(mode: .drain) { display.record($0) }
    display.finish()
    var report = "Delivered \(summary.sent)"
    if summary.failed > 0 { report += ", \(summary.failed) refused for good by the relay" }
    print(report + " (\(runtime.transportDescription)).")
    if summary.waitedForAnotherSender { print("Another waitlist process sent part of the mail meanwhile.") }
    if interrupted.withLockedValue({ $0 }) {
        printError("Stopped after the messages in flight; \(summary.leftQueued) still queued. Run `waitlist send` to finish.")
        throw ExitStatus.tryLater
    }
    if let reason = summary.stopReason {
        printError(
            "\(reason). Sending stopped; \(summary.leftQueued) messages stay queued. Check WAITLIST_SMTP_URL and the relay, then run `waitlist send`."
        )
        throw ExitStatus.unavailable
    }
    if summary.leftQueued > 0 {
        var message = "\(summary.leftQueued) messages stay queued for a later try"
        if let reason = summary.lastTransientError { message += "; the last failure: \(reason)" }
        printError(message + ". Run `waitlist send` again later (the server's worker retries them too).")
        throw summary.sent == 0 && summary.retried > 0 ? ExitStatus.unavailable : ExitStatus.tryLater
    }
}
