"""inat-tf: the iNaturalist 2017 dataset as TFRecords, Keras models, Kaggle CSVs and SavedModels."""
