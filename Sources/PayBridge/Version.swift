public enum PayBridgeVersion { public static let string = "0.1.0" }
