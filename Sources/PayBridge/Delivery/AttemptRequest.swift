import Foundation

/// One attempt on the wire: the request paybridge sends, and what the answer means.
enum AttemptRequest {
    /// The body as the endpoint receives it, signed (Standard Webhooks) at `timestamp` over
    /// that very body, with the rendering's and the endpoint's headers and its authorization.
    static func make(
        _ delivery: QueuedDelivery, to endpoint: EndpointConfiguration, signer: WebhookSigner, timestamp: Int, authorization: Secret?
    ) -> HTTPRequest {
        var headers: [(name: String, value: String)] = [
            ("Content-Type", delivery.contentType ?? Rendering.standardContentType), ("webhook-id", delivery.eventId),
            ("webhook-timestamp", String(timestamp)),
        ]
        if let signature = signer.signature(id: delivery.eventId, timestamp: timestamp, body: delivery.body) {
            headers.append(("webhook-signature", signature))
        }
        for header in delivery.headers { headers.append((header.name, header.value)) }
        headers.append(contentsOf: endpoint.headers)
        if let authorization { headers.append(("Authorization", "Bearer \(authorization.value)")) }
        return HTTPRequest(
            method: .post, url: endpoint.url, headers: headers, body: delivery.body, timeout: endpoint.timeout,
            connectTimeout: endpoint.connectTimeout, tls: endpoint.tls, maxResponseBytes: 4096, proxy: endpoint.proxy)
    }

    /// The transport's answer as the delivery machine reads it.
    static func result(of result: Result<HTTPResponse, TransportError>) -> AttemptResult {
        switch result {
        case .success(let response):
            // Headers are parsed only where one is used: Retry-After on 429 and 503.
            let retryAfter = response.status == 429 || response.status == 503 ? response.header("retry-after") : nil
            return .response(status: response.status, retryAfter: retryAfter, excerpt: response.bodyExcerpt(limit: 200))
        case .failure(let error):
            return .failure(error)
        }
    }
}
