// `s3://bucket/prefix` URLs: places outside the service's own layout that it is told to read (a dataset to
// import, a folder of backbone weights).

export interface S3Url {
  bucket: string;
  /** The key prefix, '' or ending with '/'. */
  prefix: string;
}

/** The bucket and prefix of an `s3://bucket/prefix` URL, or null where it is not one. */
export function parseS3Url(url: string): S3Url | null {
  const m = /^s3:\/\/([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:\/(.*))?$/.exec(url);
  if (!m) return null;
  const rest = m[2] ?? '';
  return { bucket: m[1]!, prefix: rest && !rest.endsWith('/') ? `${rest}/` : rest };
}
