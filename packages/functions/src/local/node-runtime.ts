/**
 * Imported first by local mode's entry. Hearth requires Node 22 (`engines` in package.json; `npm ci`
 * says so on an older Node), so the AWS SDK's own eight-line notice about Node versions would only
 * repeat that at every start; a normal start prints Hearth's lines and nothing else. The SDK reads the
 * variable when its first client is made. Set explicitly, it is left as the user set it.
 */
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";
