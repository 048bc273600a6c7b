import CCurl
import Foundation
import WaitlistCore

/// One SMTP transaction on a connection that libcurl set up: the envelope (pipelined where the relay
/// offers PIPELINING), the dot-stuffed message, and reading the relay's replies.
extension SMTPConnection {
    // MARK: - One message

    /// What `MAIL FROM` and `RCPT TO` of one message say: compared when a message's envelope
    /// went out ahead, after the end of the message before it.
    struct Envelope: Equatable {
        var sender: String
        var recipient: String
        var size: Int
    }

    /// A transaction taken up to its point of no return by ``begin(_:from:to:following:)``: what
    /// ``finish(_:)`` writes, and by when the relay must have answered.
    struct Begun {
        /// The message's last bytes with the end of DATA, and any envelope sent ahead after them.
        var end: ArraySlice<UInt8>
        /// The envelope sent ahead with the end, if the relay offers PIPELINING.
        var next: Envelope?
        var deadline: ContinuousClock.Instant
    }

    /// Begins one SMTP transaction: the envelope, then the dot-stuffed message up to its last bytes
    /// (its last 64 KiB, with the end of DATA: all of a usual message); ``finish(_:)`` sends them.
    /// Until then the relay cannot accept the message; a connection whose transaction is never
    /// finished is unusable, and is cut when closed.
    ///
    /// Where the relay offers PIPELINING, `following` (the envelope of the message that comes next on
    /// this connection) goes out right after the end of this message, in the same write (RFC 2920
    /// §3.1: the message may be the first of a group of commands), and its replies wait to be read by
    /// that message's transaction: one round trip a message instead of two. Until that message's
    /// end, nothing of it can be accepted; a connection left with such an envelope is cut when it is
    /// closed, never ended with `QUIT` (the relay may be waiting for the message's data).
    func begin(_ message: [UInt8], from sender: String, to recipient: String, following: Envelope?) throws(DeliveryError) -> Begun {
        let deadline = ContinuousClock.now + messageTimeout
        transactionReplies = 0
        let envelope = Envelope(sender: sender, recipient: recipient, size: message.count)
        var replies: [Reply] = []
        if let ahead = envelopeAhead {
            envelopeAhead = nil
            guard ahead == envelope else {
                isUsable = false
                throw .transient("The SMTP session sent another message's envelope ahead; the connection was dropped.")
            }
            for _ in 0..<3 { replies.append(try readReply(until: deadline)) }
        } else if greeting.offersPipelining {
            try write(commands(for: envelope)[...], until: deadline)
            for _ in 0..<3 { replies.append(try readReply(until: deadline)) }
        } else {
            for command in commandLines(for: envelope) {
                try write(Array((command + "\r\n").utf8)[...], until: deadline)
                let reply = try readReply(until: deadline)
                replies.append(reply)
                if !reply.isPositive { break }
            }
        }
        if replies.contains(where: { $0.code == 421 }) { isUsable = false }  // the relay is closing the connection
        let dataTaken = replies.count == 3 && replies[2].code == 354
        if replies[0].code / 100 != 2 {
            if dataTaken { isUsable = false }  // it waits for a message that will not come
            throw replies[0].code / 100 == 5
                ? .senderRefused("The relay \(relay) refused the sender: \(replies[0].line).")
                : .transient("The relay \(relay) deferred the sender: \(replies[0].line).")
        }
        if replies[1].code / 100 != 2 {
            if dataTaken { isUsable = false } else { try reset(until: deadline) }
            switch replies[1].code {
            case 421: throw .transient("The relay \(relay) is closing the connection: \(replies[1].line).")
            case 500...599:
                throw .permanent("The relay \(relay) refused the recipient: \(replies[1].line).", policy: replies[1].isPolicyRefusal)
            default: throw .deferred("The relay \(relay) deferred the recipient: \(replies[1].line).")
            }
        }
        guard dataTaken else {
            try reset(until: deadline)
            throw .transient("The relay \(relay) did not take the message: \(replies[2].line).")
        }

        var data = Self.dotStuffed(message)
        let endStart = max(0, data.count - Self.lastPart)
        let next = greeting.offersPipelining ? following : nil
        if let next { data += commands(for: next) }
        isUsable = false  // until the relay has answered the end of DATA
        try write(data[..<endStart], until: deadline)
        return Begun(end: data[endStart...], next: next, deadline: deadline)
    }

    /// Sends the end of a transaction ``begin(_:from:to:following:)`` began; returns once the relay
    /// has answered it with `250`.
    func finish(_ begun: Begun) throws(DeliveryError) {
        let deadline = begun.deadline
        try write(begun.end, until: deadline)
        envelopeAhead = begun.next
        let reply = try readReply(until: deadline)
        isUsable = reply.code != 421
        switch reply.code / 100 {
        case 2: return
        case 5: throw .permanent("The relay \(relay) refused the message: \(reply.line).", policy: reply.isPolicyRefusal)
        default: throw .transient("The relay \(relay) deferred the message: \(reply.line).")
        }
    }

    /// `MAIL FROM`, `RCPT TO` and `DATA` for `envelope`, with the parameters the relay offers.
    private func commandLines(for envelope: Envelope) -> [String] {
        var mailFrom = "MAIL FROM:<\(envelope.sender)>"
        if greeting.offersSize { mailFrom += " SIZE=\(envelope.size)" }
        if greeting.offersSMTPUTF8 && !(envelope.sender.utf8.allSatisfy { $0 < 0x80 } && envelope.recipient.utf8.allSatisfy { $0 < 0x80 }) {
            mailFrom += " SMTPUTF8"
        }
        return [mailFrom, "RCPT TO:<\(envelope.recipient)>", "DATA"]
    }

    /// The three commands of `envelope` as one pipelined group.
    private func commands(for envelope: Envelope) -> [UInt8] {
        Array((commandLines(for: envelope).joined(separator: "\r\n") + "\r\n").utf8)
    }

    /// Ends a transaction that will not carry a message (`RSET`), so the next can start; a connection
    /// whose relay does not agree is dropped.
    private func reset(until deadline: ContinuousClock.Instant) throws(DeliveryError) {
        guard isUsable else { return }
        try write(Array("RSET\r\n".utf8)[...], until: deadline)
        if try readReply(until: deadline).code / 100 != 2 { isUsable = false }
    }

    /// How much of the message, at most, goes out in ``finish(_:)``: all of a usual one, in one write.
    static let lastPart = 64 * 1024

    /// `message` as DATA carries it (RFC 5321 §4.5.2): a dot doubled at the start of every line, and the
    /// end-of-data line after it.
    static func dotStuffed(_ message: [UInt8]) -> [UInt8] {
        let dot = UInt8(ascii: "."), cr = UInt8(ascii: "\r"), lf = UInt8(ascii: "\n")
        var data: [UInt8] = []
        data.reserveCapacity(message.count + 64)
        message.withUnsafeBufferPointer { bytes in
            guard let start = bytes.baseAddress else { return }
            var copiedUpTo = 0
            var index = 0
            // memchr: a sender stuffs every message, and a generic search costs several times more.
            while index < bytes.count, let match = memchr(start + index, Int32(dot), bytes.count - index) {
                let found = UnsafeRawPointer(match).assumingMemoryBound(to: UInt8.self) - start
                if found == 0 || (found >= 2 && bytes[found - 1] == lf && bytes[found - 2] == cr) {
                    data.append(contentsOf: bytes[copiedUpTo...found])
                    copiedUpTo = found  // the dot goes out twice
                }
                index = found + 1
            }
            data.append(contentsOf: bytes[copiedUpTo...])
        }
        if !(data.count >= 2 && data[data.count - 2] == cr && data[data.count - 1] == lf) { data += [cr, lf] }
        data += [dot, cr, lf]
        return data
    }

    // MARK: - Reading and writing

    /// One reply of the relay: its code and, for a refusal, its last line.
    struct Reply {
        var code: Int
        /// The last line of a 4xx or 5xx reply; empty for the others, which nobody reads.
        var refusal: [UInt8]
        /// 2xx or 3xx.
        var isPositive: Bool { (200...399).contains(code) }
        /// A refusal for a policy reason: its enhanced status code (RFC 3463) is `5.7.x`.
        var isPolicyRefusal: Bool {
            let text = refusal.dropFirst(4)
            return code / 100 == 5 && text.starts(with: Array("5.7.".utf8))
        }
        /// The reply as readable text, for reasons: the last line of a refusal, else the code. Relays
        /// often quote the address they refuse; the reason is stored and logged, so every word with an
        /// `@` in it becomes `<address>`.
        var line: String {
            guard !refusal.isEmpty else { return String(code) }
            let text = refusal.withUnsafeBytes { SMTPFailure.printable($0) }
            return RelayReply.withoutAddresses(text)
        }
    }

    private func write(_ bytes: ArraySlice<UInt8>, until deadline: ContinuousClock.Instant) throws(DeliveryError) {
        var offset = bytes.startIndex
        while offset < bytes.endIndex {
            var count = 0
            let code = bytes.withUnsafeBytes { buffer in
                curl_easy_send(handle, buffer.baseAddress! + (offset - bytes.startIndex), bytes.endIndex - offset, &count)
            }
            if code == CURLE_OK {
                offset += count
            } else if code == CURLE_AGAIN {
                try wait(for: POLLOUT, until: deadline)
            } else {
                throw failed(code)
            }
        }
    }

    /// The next complete reply, reading from the connection as needed.
    private func readReply(until deadline: ContinuousClock.Instant) throws(DeliveryError) -> Reply {
        while true {
            if let reply = try takeReply() {
                transactionReplies += 1
                return reply
            }
            var count = 0
            let code = scratch.withUnsafeMutableBytes { curl_easy_recv(handle, $0.baseAddress, $0.count, &count) }
            if code == CURLE_OK {
                guard count > 0 else {
                    isUsable = false
                    throw .transient("The relay \(relay) closed the connection.")
                }
                received.append(contentsOf: scratch[..<count])
            } else if code == CURLE_AGAIN {
                try wait(for: POLLIN, until: deadline)
            } else {
                throw failed(code)
            }
        }
    }

    /// Takes a whole reply (`250-…` lines up to `250 …`) off the front of `received`, if one is there.
    private func takeReply() throws(DeliveryError) -> Reply? {
        var lineStart = 0
        while let newline = received[lineStart...].firstIndex(of: UInt8(ascii: "\n")) {
            let line = received[lineStart..<newline]
            let digits = line.prefix(3)
            guard digits.count == 3, digits.allSatisfy({ (0x30...0x39).contains($0) }) else {
                isUsable = false
                let text = line.withUnsafeBytes { SMTPFailure.printable($0) }
                throw .transient("The relay \(relay) answered something that is not SMTP: \(text).")
            }
            if line.dropFirst(3).first != UInt8(ascii: "-") {
                let code = digits.reduce(0) { $0 * 10 + Int($1 - 0x30) }
                let reply = Reply(code: code, refusal: code >= 400 ? Array(line) : [])
                received.removeSubrange(...newline)
                return reply
            }
            lineStart = newline + 1
        }
        if received.count > 64 * 1024 {
            isUsable = false
            throw .transient("The relay \(relay) sent a reply longer than 64 KiB.")
        }
        return nil
    }

    /// Waits until the connection can be read or written (`events`), or throws once `deadline` has passed.
    private func wait(for events: Int32, until deadline: ContinuousClock.Instant) throws(DeliveryError) {
        let left = deadline - ContinuousClock.now
        guard left > .zero else {
            isUsable = false
            throw .transient("The relay \(relay) did not answer in time: no reply within \(messageTimeout.components.seconds) s.")
        }
        let (seconds, attoseconds) = left.components
        let milliseconds = Int32(clamping: seconds * 1000 + attoseconds / 1_000_000_000_000_000 + 1)
        var descriptor = pollfd(fd: socket, events: Int16(events), revents: 0)
        if poll(&descriptor, 1, milliseconds) < 0 && errno != EINTR {
            isUsable = false
            throw .transient("Waiting for the relay \(relay) failed: \(String(cString: strerror(errno))).")
        }
    }

    /// A failed `curl_easy_send` or `curl_easy_recv`, which leaves the connection unusable.
    private func failed(_ code: CURLcode) -> DeliveryError {
        isUsable = false
        return .transient("Sending through the relay \(relay) failed: \(String(cString: curl_easy_strerror(code))).")
    }
}
