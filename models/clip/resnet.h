// models/clip/resnet.h — OpenAI's ModifiedResNet image tower (RN50, RN101, RN50x4, ...).
// Implemented in models/clip/resnet.cpp.
#pragma once
#include "models/clip/clip.h"

namespace vislang::clip {

class ModifiedResNet final : public ImageTower {
 public:
  ModifiedResNet(const WeightScope& visual, const ClipConfig& c, DType dt);
  Tensor encode(const Tensor& pixels) const override;  // (B, 3, S, S) -> (B, E)

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace vislang::clip
