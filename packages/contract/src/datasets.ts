// Datasets: the manifest (the dataset record), the per-image index the worker trains from, the health report made
// at upload, and the bodies of the dataset routes.
import { Type, type Static } from '@sinclair/typebox';
import { ID_PATTERN, List, Page, Split } from './common';

export const NAME_MAX = 200;

export const HealthSummarySchema = Type.Object(
  {
    images: Type.Integer(),
    nearDuplicateGroups: Type.Integer(),
    nearDuplicateImages: Type.Integer(),
    leakagePairs: Type.Integer(),
    leakedImages: Type.Integer(),
    exactCopies: Type.Integer(),
    tinyImages: Type.Integer(),
    extremeAspectImages: Type.Integer(),
    smallClasses: Type.Integer(),
  },
  { title: 'HealthSummary' },
);
export type HealthSummary = Static<typeof HealthSummarySchema>;

/** Images per class in each split. */
const SplitCounts = Type.Record(Type.String(), Type.Record(Type.String(), Type.Integer()));

/** A dataset as the API serves it; stored as manifest.json, written last. */
export const DatasetManifestSchema = Type.Object(
  {
    id: Type.String({ pattern: ID_PATTERN.ds }),
    name: Type.String(),
    status: Type.Literal('ready'),
    classes: Type.Array(Type.String()),
    splits: SplitCounts,
    imageCount: Type.Integer(),
    bytes: Type.Integer(),
    rejected: Type.Array(Type.Object({ path: Type.String(), reason: Type.String() })),
    duplicates: Type.Integer({ description: 'files whose bytes repeat an image already in the dataset' }),
    warnings: Type.Array(Type.String()),
    /** Counts of the health report; absent on datasets uploaded before it existed. */
    health: Type.Optional(HealthSummarySchema),
    createdAt: Type.String({ format: 'date-time' }),
  },
  { title: 'Dataset' },
);
export type DatasetManifest = Static<typeof DatasetManifestSchema>;

/** One image of the index. */
export interface IndexedImage {
  /** Absent on datasets uploaded before images had ids (as are path and phash). */
  id?: string;
  /** The path in the uploaded archive (or under the imported prefix). */
  path?: string;
  split: Split;
  label: string;
  /** Its object key. */
  key: string;
  width: number;
  height: number;
  /** Whole-frame perceptual hash, 16 hex digits. */
  phash?: string;
}

/** The per-image index the worker trains from (index.json, kept apart from the manifest, which lists cheaply). */
export interface DatasetIndex {
  images: IndexedImage[];
  /** Validation and test images that are near-copies of an image in an earlier split (see the health report). */
  leakedImageIds?: string[];
  /** The ids of each group of near-identical images within a split: a carved validation split keeps a group whole. */
  nearDuplicateGroups?: string[][];
}

export const DatasetList = List(DatasetManifestSchema);
export type DatasetList = Static<typeof DatasetList>;

export const UploadQuery = Type.Object({ name: Type.Optional(Type.String({ minLength: 1, maxLength: NAME_MAX })) });

export const ImportBody = Type.Object(
  {
    name: Type.Optional(Type.String({ minLength: 1, maxLength: NAME_MAX })),
    source: Type.String({ minLength: 6, maxLength: 1100, description: 's3://bucket/prefix/ holding <class>/… or <split>/<class>/…' }),
  },
  { additionalProperties: false },
);
export type ImportBody = Static<typeof ImportBody>;

/** How an image is named in the health report and the image list. */
export const ImageRefSchema = Type.Object(
  {
    imageId: Type.String({ pattern: ID_PATTERN.img }),
    path: Type.String({ description: 'where it was in the archive' }),
    split: Split,
    label: Type.String(),
    width: Type.Integer(),
    height: Type.Integer(),
  },
  { title: 'ImageRef' },
);
export type ImageRef = Static<typeof ImageRefSchema>;

export const NearDuplicateGroupSchema = Type.Object(
  {
    split: Split,
    similarity: Type.Number({ description: 'the lowest correlation of the pairs that joined the group (0..1)' }),
    mixedLabels: Type.Boolean({ description: 'the same photo carries two labels' }),
    images: Type.Array(ImageRefSchema),
  },
  { title: 'NearDuplicateGroup' },
);
export type NearDuplicateGroup = Static<typeof NearDuplicateGroupSchema>;

export const LeakagePairSchema = Type.Object(
  {
    similarity: Type.Number({ description: "correlation of the two images' best-aligned 16x16 thumbnails (0..1)" }),
    distance: Type.Integer({ description: 'Hamming distance of their closest perceptual hashes (0..64 bits)' }),
    sameLabel: Type.Boolean(),
    images: Type.Tuple([ImageRefSchema, ImageRefSchema], { description: 'the image in the earlier split, then its copy' }),
  },
  { title: 'LeakagePair' },
);
export type LeakagePair = Static<typeof LeakagePairSchema>;

export const ExactCopySchema = Type.Object(
  {
    path: Type.String({ description: 'where the copy was in the archive; its bytes repeat `kept`, so it was not stored again' }),
    split: Split,
    label: Type.String(),
    kept: ImageRefSchema,
  },
  { title: 'ExactCopy' },
);
export type ExactCopy = Static<typeof ExactCopySchema>;

export const ClassBalanceSchema = Type.Object(
  {
    counts: SplitCounts,
    imbalanceRatio: Type.Number({ description: 'largest over smallest train class' }),
    smallClasses: Type.Array(Type.Object({ class: Type.String(), count: Type.Integer(), othersMedian: Type.Number() })),
  },
  { title: 'ClassBalance' },
);
export type ClassBalance = Static<typeof ClassBalanceSchema>;

export const MatchThresholdsSchema = Type.Object({
  maxDistance: Type.Number(),
  minCorrelation: Type.Number(),
  closeDistance: Type.Number({ description: 'hashes this close (bits) need only closeCorrelation' }),
  closeCorrelation: Type.Number(),
  maxColour: Type.Number({ description: 'largest colour distance (0..1)' }),
});
export type MatchThresholds = Static<typeof MatchThresholdsSchema>;

/** GET /v1/datasets/:id/health: made at upload, stored as health.json. */
export const HealthReportSchema = Type.Object(
  {
    datasetId: Type.String({ pattern: ID_PATTERN.ds }),
    summary: HealthSummarySchema,
    findings: Type.Array(Type.Object({ kind: Type.String(), message: Type.String() }), { description: 'in words, most serious first' }),
    classBalance: ClassBalanceSchema,
    nearDuplicates: Type.Array(NearDuplicateGroupSchema),
    leakage: Type.Array(LeakagePairSchema),
    leakedImageIds: Type.Array(Type.String(), { description: 'the later-split image of every leakage pair: what a job with dropLeaked leaves out' }),
    nearDuplicateImageIds: Type.Array(Type.Array(Type.String()), { description: 'the ids of the images of every near-identical group (nearDuplicates lists the first ones in full)' }),
    exactCopies: Type.Array(ExactCopySchema),
    tinyImages: Type.Array(ImageRefSchema),
    extremeAspectImages: Type.Array(Type.Composite([ImageRefSchema, Type.Object({ aspect: Type.Number() })])),
    thresholds: Type.Composite([MatchThresholdsSchema, Type.Object({ tinyEdge: Type.Integer(), extremeAspect: Type.Number(), smallClassShare: Type.Number() })]),
    nearDuplicatesSearched: Type.Boolean({ description: 'false where the dataset had more images than are compared pairwise' }),
    seconds: Type.Number({ description: 'how long the analysis took' }),
  },
  { title: 'HealthReport' },
);
export type HealthReport = Static<typeof HealthReportSchema>;

const ImageListItem = Type.Object({
  imageId: Type.Optional(Type.String({ pattern: ID_PATTERN.img, description: 'absent on datasets uploaded before images had ids' })),
  path: Type.Optional(Type.String()),
  split: Split,
  label: Type.String(),
  width: Type.Integer(),
  height: Type.Integer(),
});
export const ImagePage = Page(ImageListItem);
export type ImagePage = Static<typeof ImagePage>;

export const ImageListQuery = Type.Object({
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 500, default: 50 })),
  offset: Type.Optional(Type.Integer({ minimum: 0, default: 0 })),
  split: Type.Optional(Split),
  class: Type.Optional(Type.String({ minLength: 1, maxLength: NAME_MAX })),
});

export const ImageParams = Type.Object({
  id: Type.String({ pattern: ID_PATTERN.ds }),
  imageId: Type.String({ pattern: ID_PATTERN.img }),
});

export const ThumbnailQuery = Type.Object({
  size: Type.Optional(Type.Integer({ minimum: 32, maximum: 512, default: 128, description: 'edge of the square, px' })),
});

export const ThumbnailsQuery = Type.Object({
  class: Type.Optional(Type.String({ minLength: 1, maxLength: NAME_MAX, description: 'only this class; every class by default' })),
  split: Type.Optional(Type.Union(Split.anyOf, { description: 'only this split' })),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 24, default: 6, description: 'images per class' })),
  size: Type.Optional(Type.Integer({ minimum: 32, maximum: 256, default: 96, description: 'edge of the square thumbnail, px' })),
});

export const ThumbnailSchema = Type.Composite([
  Type.Omit(ImageListItem, ['label']),
  Type.Object({ class: Type.String(), image: Type.String({ description: 'a JPEG data URL' }) }),
], { title: 'Thumbnail' });
export type Thumbnail = Static<typeof ThumbnailSchema>;

export const Thumbnails = Type.Object({ datasetId: Type.String(), size: Type.Integer(), items: Type.Array(ThumbnailSchema) });
export type Thumbnails = Static<typeof Thumbnails>;
