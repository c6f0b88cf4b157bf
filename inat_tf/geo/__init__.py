"""A location-and-date prior p(y | place, time) for any image classifier.

Mac Aodha, Cole and Perona, "Presence-Only Geographical Priors for Fine-Grained Image
Classification", ICCV 2019 (arXiv:1906.05272): a small residual fully connected network maps
where and when a photo was taken to one independent probability per species, trained from
presence-only observations (the train split's coordinates and dates, no images); at test time
p(y | image, place, time) ∝ p(y | image) · p(y | place, time).

  encoding   place (latitude, longitude, date) → network input, and which rows have a place
  model      the Keras network (build) and its presence-only loss (presence_only_loss)
  prior      a trained prior (GeoPrior.load) and THE combination (combine), used by inat-eval,
             inat-predict, inat-export and inat-classify alike
  train      `inat-train-geo`
"""
