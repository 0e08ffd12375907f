import CCurl
import CurlShim
import Foundation
import Synchronization

/// HTTP through libcurl's multi interface: every transfer runs on one thread, and
/// connections are kept in the multi handle's cache so keep-alive is reused across requests.
public final class CurlHTTPClient: HTTPClient, @unchecked Sendable {
    // @unchecked: `multi` and the loop-only fields below are touched only by the loop thread
    // after `init`; everything shared goes through `inbox`.

    private struct Submission: Sendable {
        var request: HTTPRequest
        var completion: @Sendable (Result<HTTPResponse, TransportError>) -> Void
    }

    private struct Inbox: ~Copyable {
        var submissions: [Submission] = []
        var stopping = false
        var stopped = false
    }

    private static let globalInit: Bool = {
        curl_global_init(Int(CURL_GLOBAL_ALL)) == CURLE_OK
    }()

    private let multi: UnsafeMutableRawPointer
    private let inbox = Mutex(Inbox())
    /// Large bodies handed back by callers (pages of payments), reused for the next large
    /// response: a fresh multi-megabyte buffer costs a page fault per 4 KB to zero-fill.
    private let spareBodies = Mutex<[[UInt8]]>([])
    static let spareThreshold = 256 << 10
    private let userAgent: String
    private let finished = DispatchSemaphore(value: 0)

    // Loop-thread state.
    private var active: [UnsafeMutableRawPointer: CurlTransfer] = [:]
    private var idleHandles: [UnsafeMutableRawPointer] = []

    /// Starts the transfer thread. `userAgent` is sent unless a request sets its own.
    public init(userAgent: String = "paybridge/\(PayBridgeVersion.string)") {
        _ = Self.globalInit
        guard let multi = curl_multi_init() else {
            // curl_multi_init only fails when memory is exhausted.
            fatalError("curl_multi_init failed: out of memory")
        }
        self.multi = multi
        self.userAgent = userAgent
        // The cache defaults to four connections per handle currently added, which shrinks
        // between bursts and closes keep-alive connections we are about to reuse.
        _ = cshim_multi_setopt_long(multi, CURLMOPT_MAXCONNECTS, 1024)
        let thread = Thread { [self] in self.runLoop() }
        thread.name = "paybridge-curl"
        thread.start()
    }

    public func submit(_ request: HTTPRequest, completion: @escaping @Sendable (Result<HTTPResponse, TransportError>) -> Void) {
        let accepted = inbox.withLock { inbox -> Bool in
            guard !inbox.stopping else { return false }
            inbox.submissions.append(Submission(request: request, completion: completion))
            return true
        }
        if accepted {
            curl_multi_wakeup(multi)
        } else {
            completion(.failure(.cancelled))
        }
    }

    /// Submits several requests with one wake-up of the transfer thread.
    public func submit(batch: [(HTTPRequest, @Sendable (Result<HTTPResponse, TransportError>) -> Void)]) {
        let accepted = inbox.withLock { inbox -> Bool in
            guard !inbox.stopping else { return false }
            for (request, completion) in batch {
                inbox.submissions.append(Submission(request: request, completion: completion))
            }
            return true
        }
        if accepted {
            curl_multi_wakeup(multi)
        } else {
            for (_, completion) in batch { completion(.failure(.cancelled)) }
        }
    }

    public func recycle(_ body: [UInt8]) {
        guard body.capacity >= Self.spareThreshold else { return }
        spareBodies.withLock { spares in
            if spares.count < 2 { spares.append(body) }
        }
    }

    /// A spare body with room for `bytes`, emptied, or nil.
    fileprivate func spareBody(for bytes: Int) -> [UInt8]? {
        guard bytes >= Self.spareThreshold else { return nil }
        guard var body = spareBodies.withLock({ spares -> [UInt8]? in
            guard let index = spares.firstIndex(where: { $0.capacity >= bytes }) else { return nil }
            return spares.remove(at: index)
        }) else { return nil }
        body.removeAll(keepingCapacity: true)
        return body
    }

    /// Stops the thread; transfers still running complete with `.cancelled`.
    public func shutdown() {
        let wasRunning = inbox.withLock { inbox -> Bool in
            let running = !inbox.stopping
            inbox.stopping = true
            return running
        }
        guard wasRunning else { return }
        curl_multi_wakeup(multi)
        finished.wait()
    }

    // MARK: - Transfer thread

    private func runLoop() {
        var running: Int32 = 0
        while true {
            let (batch, stopping) = inbox.withLock { inbox -> ([Submission], Bool) in
                let batch = inbox.submissions
                inbox.submissions.removeAll(keepingCapacity: true)
                return (batch, inbox.stopping)
            }
            if stopping {
                cancelAll(pending: batch)
                break
            }
            for submission in batch { start(submission) }
            curl_multi_perform(multi, &running)
            collectFinished()
            var ready: Int32 = 0
            curl_multi_poll(multi, nil, 0, 1000, &ready)
        }
        for handle in idleHandles { curl_easy_cleanup(handle) }
        idleHandles.removeAll()
        curl_multi_cleanup(multi)
        finished.signal()
    }

    private func start(_ submission: Submission) {
        guard let easy = idleHandles.popLast() ?? curl_easy_init() else {
            submission.completion(.failure(.other("curl_easy_init failed")))
            return
        }
        let transfer = CurlTransfer(request: submission.request, completion: submission.completion, client: self)
        if let problem = transfer.configure(easy, userAgent: userAgent) {
            transfer.releaseResources()
            curl_easy_reset(easy)
            idleHandles.append(easy)
            submission.completion(.failure(.invalidRequest(problem)))
            return
        }
        active[easy] = transfer
        curl_multi_add_handle(multi, easy)
    }

    private func collectFinished() {
        var remaining: Int32 = 0
        while let message = curl_multi_info_read(multi, &remaining) {
            guard message.pointee.msg == CURLMSG_DONE, let easy = message.pointee.easy_handle else { continue }
            let code = cshim_msg_result(message)
            curl_multi_remove_handle(multi, easy)
            guard let transfer = active.removeValue(forKey: easy) else { continue }
            let result = transfer.result(code: code, easy: easy)
            transfer.releaseResources()
            recycle(easy)
            transfer.completion(result)
        }
    }

    private func recycle(_ easy: UnsafeMutableRawPointer) {
        if idleHandles.count < 512 {
            curl_easy_reset(easy)
            idleHandles.append(easy)
        } else {
            curl_easy_cleanup(easy)
        }
    }

    private func cancelAll(pending: [Submission]) {
        for (easy, transfer) in active {
            curl_multi_remove_handle(multi, easy)
            transfer.releaseResources()
            curl_easy_cleanup(easy)
            transfer.completion(.failure(.cancelled))
        }
        active.removeAll()
        for submission in pending { submission.completion(.failure(.cancelled)) }
        let late = inbox.withLock { inbox -> [Submission] in
            inbox.stopped = true
            let late = inbox.submissions
            inbox.submissions.removeAll()
            return late
        }
        for submission in late { submission.completion(.failure(.cancelled)) }
    }
}

/// One transfer's buffers. Lives on the transfer thread from `configure` to `result`.
private final class CurlTransfer {
    let request: HTTPRequest
    let completion: @Sendable (Result<HTTPResponse, TransportError>) -> Void
    private unowned let client: CurlHTTPClient
    private var responseBody: [UInt8] = []
    private var responseHeaders: [UInt8] = []
    private var truncated = false
    private var headerList: UnsafeMutablePointer<curl_slist>?
    private var requestBody: UnsafeMutableRawBufferPointer?
    private let errorBuffer = UnsafeMutablePointer<CChar>.allocate(capacity: Int(CURL_ERROR_SIZE) + 1)

    init(request: HTTPRequest, completion: @escaping @Sendable (Result<HTTPResponse, TransportError>) -> Void, client: CurlHTTPClient) {
        self.request = request
        self.completion = completion
        self.client = client
        errorBuffer.initialize(repeating: 0, count: Int(CURL_ERROR_SIZE) + 1)
    }

    /// Sets the handle's options; returns a problem description when one is refused.
    func configure(_ easy: UnsafeMutableRawPointer, userAgent: String) -> String? {
        let me = Unmanaged.passUnretained(self).toOpaque()
        var failures: [String] = []
        func check(_ code: CURLcode, _ what: String) {
            if code != CURLE_OK { failures.append("\(what): \(String(cString: curl_easy_strerror(code)))") }
        }
        check(cshim_easy_setopt_string(easy, CURLOPT_URL, request.url), "url")
        check(cshim_easy_setopt_string(easy, CURLOPT_PROTOCOLS_STR, "http,https"), "protocols")
        check(cshim_easy_setopt_long(easy, CURLOPT_NOSIGNAL, 1), "nosignal")
        check(cshim_easy_setopt_long(easy, CURLOPT_FOLLOWLOCATION, 0), "followlocation")
        check(cshim_easy_setopt_long(easy, CURLOPT_TIMEOUT_MS, Self.milliseconds(request.timeout)), "timeout")
        check(cshim_easy_setopt_long(easy, CURLOPT_CONNECTTIMEOUT_MS, Self.milliseconds(request.connectTimeout)), "connect timeout")
        check(cshim_easy_setopt_long(easy, CURLOPT_TCP_NODELAY, 1), "nodelay")
        check(cshim_easy_setopt_long(easy, CURLOPT_SSL_VERIFYPEER, 1), "verify peer")
        check(cshim_easy_setopt_long(easy, CURLOPT_SSL_VERIFYHOST, 2), "verify host")
        check(cshim_easy_setopt_pointer(easy, CURLOPT_ERRORBUFFER, errorBuffer), "error buffer")
        if let caFile = request.tls.caFile { check(cshim_easy_setopt_string(easy, CURLOPT_CAINFO, caFile), "CA file") }
        if let certificate = request.tls.clientCertificate {
            check(cshim_easy_setopt_string(easy, CURLOPT_SSLCERT, certificate), "client certificate")
        }
        if let key = request.tls.clientKey { check(cshim_easy_setopt_string(easy, CURLOPT_SSLKEY, key), "client key") }
        // A reused handle keeps its options: a request without a proxy clears any before it
        // (nil: libcurl's environment variables apply).
        check(cshim_easy_setopt_string(easy, CURLOPT_PROXY, request.proxy?.url.value), "proxy")
        check(cshim_easy_setopt_string(easy, CURLOPT_NOPROXY, request.proxy?.noProxy), "no proxy")

        check(cshim_easy_setopt_write_callback(easy, CURLOPT_WRITEFUNCTION, curlWriteBody), "write function")
        check(cshim_easy_setopt_pointer(easy, CURLOPT_WRITEDATA, me), "write data")
        check(cshim_easy_setopt_write_callback(easy, CURLOPT_HEADERFUNCTION, curlWriteHeader), "header function")
        check(cshim_easy_setopt_pointer(easy, CURLOPT_HEADERDATA, me), "header data")

        var hasUserAgent = false
        for header in request.headers {
            if header.name.lowercased() == "user-agent" { hasUserAgent = true }
            headerList = curl_slist_append(headerList, "\(header.name): \(header.value)")
        }
        if !hasUserAgent { headerList = curl_slist_append(headerList, "User-Agent: \(userAgent)") }

        switch request.method {
        case .get:
            check(cshim_easy_setopt_long(easy, CURLOPT_HTTPGET, 1), "GET")
        case .delete:
            check(cshim_easy_setopt_long(easy, CURLOPT_HTTPGET, 1), "GET")
            check(cshim_easy_setopt_string(easy, CURLOPT_CUSTOMREQUEST, "DELETE"), "DELETE")
        case .post, .put:
            if request.method == .put { check(cshim_easy_setopt_string(easy, CURLOPT_CUSTOMREQUEST, "PUT"), "PUT") }
            // Without this curl waits for a 100-continue on larger bodies.
            headerList = curl_slist_append(headerList, "Expect:")
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(request.body.count, 1), alignment: 1)
            request.body.withUnsafeBytes { source in
                if let base = source.baseAddress { buffer.baseAddress?.copyMemory(from: base, byteCount: source.count) }
            }
            requestBody = buffer
            check(cshim_easy_setopt_long(easy, CURLOPT_POST, 1), "POST")
            check(cshim_easy_setopt_off_t(easy, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(request.body.count)), "body size")
            check(cshim_easy_setopt_pointer(easy, CURLOPT_POSTFIELDS, buffer.baseAddress), "body")
        }
        check(cshim_easy_setopt_slist(easy, CURLOPT_HTTPHEADER, headerList), "headers")
        return failures.isEmpty ? nil : failures.joined(separator: "; ")
    }

    func appendBody(_ bytes: UnsafeRawBufferPointer) {
        if responseBody.isEmpty, let expected = expectedLength.map({ min($0, request.maxResponseBytes) }) {
            if let spare = client.spareBody(for: expected) {
                responseBody = spare
            } else {
                responseBody.reserveCapacity(expected)
            }
        }
        let room = request.maxResponseBytes - responseBody.count
        if bytes.count > room {
            truncated = true
            if room > 0 { responseBody.append(contentsOf: bytes.prefix(room)) }
        } else {
            responseBody.append(contentsOf: bytes)
        }
    }

    func appendHeaderLine(_ bytes: UnsafeRawBufferPointer) {
        // A status line starts a new response (after 100 Continue, or a redirect we don't follow).
        if bytes.count >= 5, bytes[0] == UInt8(ascii: "H"), bytes[1] == UInt8(ascii: "T"), bytes[2] == UInt8(ascii: "T"),
            bytes[3] == UInt8(ascii: "P"), bytes[4] == UInt8(ascii: "/")
        {
            responseHeaders.removeAll(keepingCapacity: true)
            return
        }
        if responseHeaders.count + bytes.count <= 64 << 10 { responseHeaders.append(contentsOf: bytes) }
    }

    /// Content-Length of the response, so the body is allocated once rather than grown.
    private var expectedLength: Int? {
        HTTPResponse(status: 0, rawHeaders: responseHeaders).header("content-length").flatMap { Int($0) }
    }

    func result(code: CURLcode, easy: UnsafeMutableRawPointer) -> Result<HTTPResponse, TransportError> {
        guard code == CURLE_OK else { return .failure(TransportError.curl(code, detail: String(cString: errorBuffer))) }
        var status = 0
        _ = cshim_easy_getinfo_long(easy, CURLINFO_RESPONSE_CODE, &status)
        return .success(HTTPResponse(status: status, rawHeaders: responseHeaders, body: responseBody, truncated: truncated))
    }

    func releaseResources() {
        if let list = headerList { curl_slist_free_all(list) }
        headerList = nil
        requestBody?.deallocate()
        requestBody = nil
    }

    deinit { errorBuffer.deallocate() }

    private static func milliseconds(_ duration: Duration) -> Int {
        let (seconds, attoseconds) = duration.components
        return max(1, Int(seconds) * 1000 + Int(attoseconds / 1_000_000_000_000_000))
    }
}

private func curlWriteBody(_ data: UnsafeMutablePointer<CChar>?, _ size: Int, _ count: Int, _ context: UnsafeMutableRawPointer?) -> Int {
    hand(data, size * count, to: context) { $0.appendBody($1) }
}

private func curlWriteHeader(_ data: UnsafeMutablePointer<CChar>?, _ size: Int, _ count: Int, _ context: UnsafeMutableRawPointer?) -> Int {
    hand(data, size * count, to: context) { $0.appendHeaderLine($1) }
}

/// Gives libcurl's bytes to the transfer its context points at; all of them are taken.
private func hand(
    _ data: UnsafeMutablePointer<CChar>?, _ length: Int, to context: UnsafeMutableRawPointer?,
    _ append: (CurlTransfer, UnsafeRawBufferPointer) -> Void
) -> Int {
    guard let data, let context else { return length }
    append(Unmanaged<CurlTransfer>.fromOpaque(context).takeUnretainedValue(), UnsafeRawBufferPointer(start: data, count: length))
    return length
}

extension TransportError {
    /// libcurl's result code in paybridge's words.
    static func curl(_ code: CURLcode, detail: String) -> TransportError {
        let text = detail.isEmpty ? String(cString: curl_easy_strerror(code)) : detail
        switch code {
        case CURLE_OPERATION_TIMEDOUT:
            return .timedOut(text)
        case CURLE_COULDNT_CONNECT, CURLE_COULDNT_RESOLVE_HOST, CURLE_COULDNT_RESOLVE_PROXY, CURLE_SEND_ERROR,
            CURLE_RECV_ERROR, CURLE_GOT_NOTHING, CURLE_PARTIAL_FILE, CURLE_WEIRD_SERVER_REPLY, CURLE_HTTP2,
            CURLE_HTTP2_STREAM:
            return .connectionFailed(text)
        case CURLE_SSL_CONNECT_ERROR, CURLE_PEER_FAILED_VERIFICATION, CURLE_SSL_CERTPROBLEM, CURLE_SSL_CIPHER,
            CURLE_SSL_CACERT_BADFILE, CURLE_SSL_ISSUER_ERROR, CURLE_SSL_PINNEDPUBKEYNOTMATCH,
            CURLE_SSL_INVALIDCERTSTATUS, CURLE_SSL_CRL_BADFILE, CURLE_SSL_ENGINE_NOTFOUND, CURLE_SSL_ENGINE_SETFAILED:
            return .tls(text)
        case CURLE_UNSUPPORTED_PROTOCOL where text.contains("response"):
            // libcurl's code for a status line it cannot read: the answer is at fault.
            return .other("the answer is not HTTP paybridge can read (\(text))")
        case CURLE_OUT_OF_MEMORY:
            // What libcurl 7.88 says of a response header over its 100 KB limit too.
            return .other("the answer's headers are too large, or memory ran out (\(text))")
        case CURLE_UNSUPPORTED_PROTOCOL, CURLE_URL_MALFORMAT:
            return .invalidRequest(text)
        default:
            return .other(text)
        }
    }
}
