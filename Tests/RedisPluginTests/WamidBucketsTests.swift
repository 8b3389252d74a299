import RedisPlugin
import Testing

/// A wamid's place is part of the data in Redis: a worker after an upgrade must find the mappings
/// and statuses an earlier one wrote. The expected places were computed apart from this code
/// (Python's `hashlib.sha256` and `base64.urlsafe_b64encode`), with digests whose base64 has `+`, `/` and `=`.
struct WamidBucketsTests {
    @Test(arguments: [
        ("wamid.HBgLMTU1NTAxMjM0NTYVAgARGBI", "wamids:{588}", "cnr95e9YzpU"),
        ("wamid.HBgLMTU1NTAxMjM0NTYVAgARGBI4", "wamids:{465}", "I_G5pND6t-0"),
        ("wamid.standin.1.119", "wamids:{455}", "JfV7bKJ-_ek"),
        ("x136", "wamids:{483}", "9xk--u_NiIA"),
    ])
    func aWamidsPlaceIsStable(_ wamid: String, _ key: String, _ field: String) {
        let place = WamidBuckets(prefix: "wamids", count: 1024).place(of: wamid)
        #expect(place.key == key)
        #expect(place.field == field)
    }
}
