// A dataset image's thumbnail by its id, fetched with the API key (an <img src> cannot send it) and shown from a
// blob URL; an empty square until it arrives, or where the image has no id.
import { useEffect, useState } from 'preact/hooks';
import { authHeaders } from '../api';

export function Thumbnail({ datasetId, imageId, size, alt, class: cls = 'thumb' }: { datasetId: string; imageId: string | null; size: number; alt: string; class?: string }) {
  const [url, setUrl] = useState<string | null>(null);
  useEffect(() => {
    if (!imageId) return;
    const c = new AbortController();
    let made: string | null = null;
    fetch(`/v1/datasets/${datasetId}/images/${imageId}/thumbnail?size=${size}`, { headers: authHeaders(), signal: c.signal })
      .then((r) => (r.ok ? r.blob() : null))
      .then((b) => {
        if (!b || c.signal.aborted) return;
        made = URL.createObjectURL(b);
        setUrl(made);
      })
      .catch(() => {});
    return () => {
      c.abort();
      if (made) URL.revokeObjectURL(made);
      setUrl(null);
    };
  }, [datasetId, imageId, size]);
  return url ? <img class={cls} src={url} alt={alt} /> : <div class={cls} />;
}
