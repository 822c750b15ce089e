package tokens

import "encoding/base64"

// YBase64 is the base64 variant Athenz uses for token signatures: the
// alphabet A-Z a-z 0-9 '.' '_' with '-' as padding, so a signature can sit in
// a cookie or a header without escaping.
var YBase64 = base64.NewEncoding("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._").WithPadding('-')
