import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import WaitlistCore
import WaitlistStore

extension Request {
    /// The language for a page: `?lang=` if it names one we speak, else the browser's preference, else Russian.
    var preferredLanguage: Language {
        if let tag = uri.queryParameters.get("lang"), let language = Language(tag: tag) { return language }
        if let header = headers[.acceptLanguage] {
            // Entries in order of appearance; q-values are rare enough among our two languages to ignore.
            for entry in header.split(separator: ",") {
                let tag = entry.split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces) } ?? ""
                if let language = Language(tag: tag) { return language }
            }
        }
        return .ru
    }

    /// Where a form or API call came from, for the consent record: the Origin, else the Referer.
    var signupSource: String? {
        headers[.origin] ?? headers[.referer]
    }
}

/// Works out which client sent a request: the socket's peer, or, when that peer is a trusted
/// proxy, the last address in `X-Forwarded-For` that is not itself a trusted proxy.
struct ClientAddressResolver: Sendable {
    let trustedProxies: Set<String>

    init(trustedProxies: [String]) {
        self.trustedProxies = Set(trustedProxies)
    }

    func clientAddress(of request: Request, peer: SocketAddress?) -> String? {
        let peerAddress = peer?.ipAddress
        guard let peerAddress, trustedProxies.contains(peerAddress) else { return peerAddress }
        let hops = request.headers[values: .xForwardedFor].joined(separator: ",").split(separator: ",")
            .map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        for hop in hops.reversed() where !trustedProxies.contains(hop) {
            return String(hop.prefix(64))
        }
        return peerAddress
    }
}

extension HTTPField.Name {
    static let xForwardedFor = Self("X-Forwarded-For")!
    static let referrerPolicy = Self("Referrer-Policy")!
    static let secFetchSite = Self("Sec-Fetch-Site")!
    static let xFrameOptions = Self("X-Frame-Options")!
}
