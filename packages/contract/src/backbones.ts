// Backbones: the pretrained bases a job can use.
import { Type, type Static } from '@sinclair/typebox';
import { Nullable } from './common';

const Preprocessing = Type.String({ description: 'how pixels are scaled for the backbone' });

/** A backbone as GET /v1/backbones lists it. */
export const BackboneListingSchema = Type.Object({
  name: Type.String(),
  inputSize: Type.Integer({ description: 'the input size the weights were trained at' }),
  trainingInputSize: Type.Integer({ description: 'the input size training uses when a config gives none' }),
  preprocessing: Preprocessing,
  featureLayer: Type.String(),
  topBlockStart: Type.String({ description: 'where fine-tuning starts by default' }),
  description: Type.Optional(Type.String()),
  weights: Type.Object({ available: Type.Boolean(), source: Nullable(Type.String()) }),
});
export type BackboneListing = Static<typeof BackboneListingSchema>;

export const BackboneSchema = Type.Composite([
  BackboneListingSchema,
  Type.Object({
    params: Nullable(Type.Integer({ description: 'parameter count; null where it cannot be built' })),
    featureShape: Nullable(Type.Array(Type.Integer())),
  }),
], { title: 'Backbone' });
export type Backbone = Static<typeof BackboneSchema>;

export const BackboneList = Type.Array(BackboneSchema);

export const BackboneParams = Type.Object({ name: Type.String({ minLength: 1, maxLength: 100 }) });
export const BackboneQuery = Type.Object({ inputSize: Type.Optional(Type.Integer({ minimum: 1, maximum: 2048 })) });
