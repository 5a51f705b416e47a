import Testing
@testable import Authentication

/// yescrypt hashes through libcrypt: salted, slow, checked in constant time.
struct PasswordHashTests {
    @Test func makesYescryptHashes() throws {
        let hash = try PasswordHash.make("correct horse")
        #expect(hash.hasPrefix("$y$"))
        // $y$<params>$<salt>$<hash>: never the password itself, and no ':' (the users file's separator).
        #expect(hash.split(separator: "$").count == 4)
        #expect(!hash.contains("correct horse"))
        #expect(!hash.contains(":"))
        #expect(!hash.contains { $0.isWhitespace })
    }

    @Test func verifiesTheRightPasswordOnly() throws {
        let hash = try PasswordHash.make("s3cret!")
        #expect(PasswordHash.verify("s3cret!", against: hash))
        #expect(!PasswordHash.verify("s3cret", against: hash))
        #expect(!PasswordHash.verify("S3cret!", against: hash))
        #expect(!PasswordHash.verify("s3cret! ", against: hash))
        #expect(!PasswordHash.verify("", against: hash))
    }

    @Test func saltsDiffer() throws {
        let first = try PasswordHash.make("same password")
        let second = try PasswordHash.make("same password")
        #expect(first != second)
        #expect(PasswordHash.verify("same password", against: first))
        #expect(PasswordHash.verify("same password", against: second))
    }

    @Test func handlesUnicodeAndPunctuation() throws {
        let password = "pä ss:wörd$ü€"
        let hash = try PasswordHash.make(password)
        #expect(PasswordHash.verify(password, against: hash))
        #expect(!PasswordHash.verify("pa ss:word$u€", against: hash))
    }

    @Test(arguments: ["", "*", "*0", "plaintext", "$y$", "$y$garbage", "$1$abc", "$y$j9T$short$"])
    func refusesBrokenHashes(_ hash: String) {
        #expect(!PasswordHash.verify("", against: hash))
        #expect(!PasswordHash.verify("plaintext", against: hash))
    }

    @Test func verifiesAKnownHash() {
        // A fixed yescrypt hash of "password", made once with crypt(3) from outside this code (Python's
        // `crypt.crypt`): the hashes are the standard `/etc/shadow` format, not something only Petrel reads.
        let hash = "$y$j9T$F5Jx5fExrKuPp53xLKQ..1$tnSYvahCwPBHKZUspmcxMfb0.WiB9W.zEaKlOBL35rC"
        #expect(PasswordHash.verify("password", against: hash))
        #expect(!PasswordHash.verify("Password", against: hash))
    }

    @Test func comparesInConstantTimeAndExactly() {
        #expect(PasswordHash.constantTimeEquals(Array("abc".utf8), Array("abc".utf8)))
        #expect(!PasswordHash.constantTimeEquals(Array("abc".utf8), Array("abd".utf8)))
        #expect(!PasswordHash.constantTimeEquals(Array("abc".utf8), Array("abcd".utf8)))
        #expect(!PasswordHash.constantTimeEquals(Array("abc\0".utf8), Array("abc".utf8)))
        #expect(!PasswordHash.constantTimeEquals([], Array("a".utf8)))
        #expect(PasswordHash.constantTimeEquals([], []))
    }
}
