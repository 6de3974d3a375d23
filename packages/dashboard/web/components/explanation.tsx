// Grad-CAM in the dashboard: where a model looks for a class in one image (POST /v1/models/:id/explain), shown
// as the overlay the API draws. The playground explains a dropped image; the confusion-matrix gallery explains
// an evaluated image of the dataset.
import { useEffect, useState } from 'preact/hooks';
import { postImage } from '../api';
import { pct } from '../format';
import type { Explanation } from '../types';
import { ErrorBox, Loading } from './ui';

export const explain = (modelId: string, image: Blob, label: string) =>
  postImage<Explanation>(`/v1/models/${modelId}/explain?label=${encodeURIComponent(label)}`, image);

/** The Grad-CAM overlay of one class over `image`, requested when shown. */
/** `note` says what the class is to the image ("Predicted class"); it leads the caption. */
export function ExplanationView({ modelId, image, label, note }: { modelId: string; image: Blob; label: string; note?: string }) {
  const [ex, setEx] = useState<Explanation | null>(null);
  const [error, setError] = useState<Error | null>(null);
  useEffect(() => {
    let live = true;
    setEx(null);
    setError(null);
    explain(modelId, image, label).then(
      (e) => live && setEx(e),
      (err) => live && setError(err as Error),
    );
    return () => void (live = false);
  }, [modelId, image, label]);
  if (error) return <ErrorBox error={error} what={`the explanation of ${label}`} />;
  if (!ex) return <Loading what={`where the model looks for ${label}`} />;
  return (
    <figure class="explanation" data-label={ex.label}>
      <img src={ex.overlay} alt={`where the model looks for ${ex.label}`} />
      <figcaption class="muted small">
        {note ? `${note}: where` : 'Where'} the model looks for <strong>{ex.label}</strong> ({pct(ex.probability)}; Grad-CAM, red: most)
      </figcaption>
    </figure>
  );
}
