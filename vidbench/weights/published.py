"""Every published checkpoint vidbench knows, in one place: a `PublishedWeights` entry each
(what torchvision's `Weights` enums and timm's `pretrained_cfg` carry), found by its file or
directory name. The format modules (`formats/`) only read and convert; this table says what each
published file is and how it is evaluated.

Entries are listed by source, in the order the format modules register (`formats.FORMAT_MODULES`;
`vidbench list --weights` shows them in this order). A published multiply-add count stated by several sources is written
once: the model registry's `ModelMeta.gmacs` where the source quotes the registry's own figure
(`_gmacs`), else one constant per table below.
"""
from __future__ import annotations

import dataclasses
from typing import Optional

from ..models import model_entry
from ._registry import PublishedWeights, register_published


def _gmacs(model: str) -> Optional[float]:
    """The published multiply-adds per view the model registry records for `model` (ModelMeta)."""
    return model_entry(model).meta.gmacs


# TimeSformer (ICML 2021) Table 5: inference TFLOPs over 3 views (0.59, 5.11, 7.14), per view;
# the official release and its Hugging Face conversions quote it
_TIMESFORMER_TABLE5 = {"timesformer_base": 196.7, "timesformer_hr": 1703.3, "timesformer_large": 2380.0}
# MViTv2 (CVPR 2022), MViTv2-S 16x4: 64 GFLOPs per view (SlowFast's projects/mvitv2 README and mmaction2's mvit README)
_MVITV2_S_PAPER_GMACS = 64.0
# timm's evaluation of ImageNet weights (the timm and Google .npz entries)
_TIMM_CSV = "timm results/results-imagenet.csv (huggingface/pytorch-image-models @ aa4b585)"


# ---- timm_vit (formats/timm_vit.py)
# timm's eval at 224: resize the short side to floor(224 / 0.9) = 248, centre crop 224; inputs in [-1, 1]
_TIMM = dict(format="timm-vit", num_frames=1, sampling_rate=1, crop_size=224, resize_size=248,
             mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), views=(1, 1), dataset="ImageNet-1k val",
             classes="imagenet1k")
_RESULTS = f"{_TIMM_CSV}, timm's own evaluation of these weights"


def _timm(model: str, tag: str, note: str, top1: float, top5: float) -> PublishedWeights:
    """timm's `<model>_patch16_224.<tag>` on the Hugging Face Hub."""
    timm_name = f"{model}_patch16_224.{tag}"
    return PublishedWeights(f"{model}.{tag}_timm", model, files=(timm_name,),
                            source=f"https://huggingface.co/timm/{timm_name} ({note})", paper=_RESULTS, top1=top1,
                            top5=top5, **_TIMM)


register_published(
    _timm("vit_base", "augreg2_in21k_ft_in1k", "Google's ImageNet-21k AugReg ViT-B/16, re-fine-tuned on ImageNet-1k "
          "by R. Wightman", 85.108, 97.530),
    _timm("vit_base", "augreg_in21k_ft_in1k", "Google's AugReg B/16 i21k -> i1k 224 .npz converted by timm", 84.534,
          97.300),
    _timm("vit_small", "augreg_in21k_ft_in1k", "Google's AugReg S/16 i21k -> i1k 224 .npz converted by timm", 81.402,
          96.150),
    _timm("vit_tiny", "augreg_in21k_ft_in1k", "Google's AugReg Ti/16 i21k -> i1k 224 .npz converted by timm", 75.452,
          92.858),
)


# ---- google_vit (formats/google_vit.py)
# vision_transformer's eval (input_pipeline.py): the whole image resized to the square crop (no
# aspect-preserving resize + crop; vidbench's nearest protocol is resize = crop), pixels to [-1, 1].
# Figures from timm's results-imagenet.csv are timm's evaluation of the same weights (converted from
# these files), with timm's protocol: bicubic, short side to floor(crop / crop_pct), centre crop.
_GOOGLE = dict(format="google-vit-npz", num_frames=1, sampling_rate=1, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5),
               views=(1, 1), dataset="ImageNet-1k val", classes="imagenet1k")
_VT = "https://github.com/google-research/vision_transformer"
_AUGREG_B16 = "B_16-i21k-300ep-lr_0.001-aug_medium1-wd_0.1-do_0.0-sd_0.0--imagenet2012-steps_20k-"
register_published(
    PublishedWeights("vit_base.orig_in21k_ft_in1k_384_google", "vit_base", overrides={"img_size": 384},
                     files=("ViT-B_16.npz",),
                     source="gs://vit_models/imagenet21k+imagenet2012/ViT-B_16.npz (the ViT paper's, 384 px: "
                            f"{_VT} README, '-224' names the 224 px files)",
                     paper=f"{_TIMM_CSV}: vit_base_patch16_384.orig_in21k_ft_in1k, crop_pct 1.0",
                     crop_size=384, resize_size=384, top1=84.212, top5=97.210, **_GOOGLE),
    PublishedWeights("vit_base.orig_in21k_ft_in1k_224_google", "vit_base", files=("ViT-B_16-224.npz",),
                     source="gs://vit_models/imagenet21k+imagenet2012/ViT-B_16-224.npz",
                     paper=f"{_VT} README, 2020-10-29 entry ('expected to achieve 81.2%' top-1)",
                     crop_size=224, resize_size=224, top1=81.2, **_GOOGLE),
    PublishedWeights("vit_base.augreg_in21k_ft_in1k_384_google", "vit_base", overrides={"img_size": 384},
                     files=(f"{_AUGREG_B16}lr_0.03-res_384.npz",),
                     source=f"gs://vit_models/augreg/{_AUGREG_B16}lr_0.03-res_384.npz (AugReg, recommended B/16)",
                     paper=f"{_VT} README, recommended AugReg checkpoints table ('Imagenet accuracy')",
                     crop_size=384, resize_size=384, top1=85.49, **_GOOGLE),
    PublishedWeights("vit_base.augreg_in21k_ft_in1k_384_lr0.01_google", "vit_base", overrides={"img_size": 384},
                     files=(f"{_AUGREG_B16}lr_0.01-res_384.npz",),
                     source=f"gs://vit_models/augreg/{_AUGREG_B16}lr_0.01-res_384.npz (timm's "
                            "vit_base_patch16_384.augreg_in21k_ft_in1k)",
                     paper=f"{_TIMM_CSV}: vit_base_patch16_384.augreg_in21k_ft_in1k, crop_pct 1.0",
                     crop_size=384, resize_size=384, top1=86.010, top5=97.998, **_GOOGLE),
    PublishedWeights("vit_base.augreg_in21k_ft_in1k_224_google", "vit_base",
                     files=(f"{_AUGREG_B16}lr_0.01-res_224.npz",),
                     source=f"gs://vit_models/augreg/{_AUGREG_B16}lr_0.01-res_224.npz (timm's "
                            "vit_base_patch16_224.augreg_in21k_ft_in1k)",
                     paper=f"{_TIMM_CSV}: vit_base_patch16_224.augreg_in21k_ft_in1k, crop_pct 0.9",
                     crop_size=224, resize_size=248, top1=84.534, top5=97.300, **_GOOGLE),
)


# ---- timesformer_official (formats/timesformer_official.py)
# Numbers: the official README model zoo (checkpoints re-trained after the paper; acc@1 / acc@5 of
# the released files), test protocol of the configs and the paper's appendix (1 clip in the middle,
# short side resized to the crop, 3 crops), normalisation of timesformer/config/defaults.py
# (DATA.MEAN / DATA.STD, not overridden by the configs), multiply-adds from the paper's Table 5
# (inference TFLOPs over the 3 views: 0.59, 5.11, 7.14).
_TS_ZOO = "facebookresearch/TimeSformer README model zoo"
_TS_PAPER = ("TimeSformer (ICML 2021) Table 5 (TFLOPs / 3 views; paper top-1 78.0 / 79.7 / 80.7); "
          "configs/Kinetics/{}.yaml; config/defaults.py DATA.MEAN/STD")
_TS_OFFICIAL = dict(format="timesformer-official", mean=(0.45, 0.45, 0.45), std=(0.225, 0.225, 0.225), views=(1, 3))
_TS_NAME = "timesformer_{}.k400_official"
register_published(
    PublishedWeights(_TS_NAME.format("base"), "timesformer_base", files=("TimeSformer_divST_8x32_224_K400.pyth",),
                     source=_TS_ZOO, paper=_TS_PAPER.format("TimeSformer_divST_8x32_224"), num_frames=8,
                     sampling_rate=32, crop_size=224, resize_size=224, top1=77.9, top5=93.2, gmacs=_TIMESFORMER_TABLE5["timesformer_base"], **_TS_OFFICIAL),
    PublishedWeights(_TS_NAME.format("hr"), "timesformer_hr", files=("TimeSformer_divST_16x16_448_K400.pyth",),
                     source=_TS_ZOO, paper=_TS_PAPER.format("TimeSformer_divST_16x16_448"), num_frames=16,
                     sampling_rate=16, crop_size=448, resize_size=448, top1=79.6, top5=94.0, gmacs=_TIMESFORMER_TABLE5["timesformer_hr"], **_TS_OFFICIAL),
    PublishedWeights(_TS_NAME.format("large"), "timesformer_large", files=("TimeSformer_divST_96x4_224_K400.pyth",),
                     source=_TS_ZOO, paper=_TS_PAPER.format("TimeSformer_divST_96x4_224"), num_frames=96,
                     sampling_rate=4, crop_size=224, resize_size=224, top1=80.6, top5=94.7, gmacs=_TIMESFORMER_TABLE5["timesformer_large"], **_TS_OFFICIAL),
)


# ---- hf_timesformer (formats/hf_timesformer.py)
# Conversions of the official K400 checkpoints (transformers' convert_timesformer_to_pytorch.py).
# The model cards give no accuracy: top-1 / top-5 are left unset (the official README's are on the
# timesformer-official entries). Normalisation: the official DATA.MEAN / STD (0.45 / 0.225), which
# base's preprocessor_config.json has since "update processor params" (4022b66; 0.5 / 0.5 before);
# hr's PR #6 of the same title (+6 -6 lines) was merged, its resulting file not seen here. Sizes:
# the preprocessor configs (shortest_edge = crop = 224 / 448); frames, sampling and 1x3 views of the
# official configs; multiply-adds of the paper's Table 5 (0.59 / 5.11 TFLOPs over 3 views).
_TS_HF = dict(format="hf-timesformer", mean=(0.45, 0.45, 0.45), std=(0.225, 0.225, 0.225), views=(1, 3))
_TS_HF_PAPER = "TimeSformer (ICML 2021) Table 5; configs/Kinetics/{}.yaml; HF preprocessor_config.json"
register_published(
    PublishedWeights("timesformer_base.k400_hf", "timesformer_base", files=("timesformer-base-finetuned-k400",),
                     source="huggingface.co/facebook/timesformer-base-finetuned-k400",
                     paper=_TS_HF_PAPER.format("TimeSformer_divST_8x32_224"), num_frames=8, sampling_rate=32,
                     crop_size=224, resize_size=224, gmacs=_TIMESFORMER_TABLE5["timesformer_base"], **_TS_HF),
    PublishedWeights("timesformer_hr.k400_hf", "timesformer_hr", files=("timesformer-hr-finetuned-k400",),
                     source="huggingface.co/facebook/timesformer-hr-finetuned-k400",
                     paper=_TS_HF_PAPER.format("TimeSformer_divST_16x16_448"), num_frames=16, sampling_rate=16,
                     crop_size=448, resize_size=448, gmacs=_TIMESFORMER_TABLE5["timesformer_hr"], **_TS_HF),
)


# ---- hf_videomae (formats/hf_videomae.py)
# Hugging Face conversions of the official Kinetics-400 fine-tuned checkpoints (transformers'
# convert_videomae_to_pytorch.py lists videomae-{small,base,large,huge}-finetuned-kinetics).
# Evaluated as the official code evaluates them (run_class_finetuning.py and the K400
# finetune.sh scripts): 16 frames at stride 4 (dense sampling), short side 224, 224 crops,
# 5 clips x 3 crops, ImageNet mean / std (datasets: tensor_normalize with 0.485/0.456/0.406,
# 0.229/0.224/0.225). Top-1 / top-5: the official MODEL_ZOO.md (1600-epoch pre-training, 16x5x3),
# which are the NeurIPS paper's numbers; an earlier MODEL_ZOO revision listed the same fine-tuned
# ViT-B / ViT-L checkpoint links at 80.9 / 94.7 and 84.7 / 96.5, and the base model card quotes
# 80.9 / 94.7. Multiply-adds per view: mmaction2's videomae README (B 180G, L 597G) and
# videomaev2 README (S 57G, same ViT-S/16 16x224 architecture); ViT-H's is not confirmed here.
# The HF checkpoints run with their config's layer_norm_eps (1e-12; trained with 1e-6) and HF's
# fc_norm eps 1e-5, which loading reproduces. HF's conversion script builds the small model with
# 16 heads (the official ViT-S has 6): the heads follow whatever the directory's config.json says.
_VIDEOMAE_HF = dict(format="hf-videomae", num_frames=16, sampling_rate=4, crop_size=224, resize_size=224,
             mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), views=(5, 3))
_VIDEOMAE_ZOO = "VideoMAE (NeurIPS 2022); MCG-NJU/VideoMAE MODEL_ZOO.md, K400 {} 1600 ep, 16x5x3"
register_published(
    PublishedWeights("videomae_small.k400_hf", "videomae_small", files=("videomae-small-finetuned-kinetics",),
                     source="huggingface.co/MCG-NJU/videomae-small-finetuned-kinetics", paper=_VIDEOMAE_ZOO.format("ViT-S"),
                     top1=79.0, top5=93.8, gmacs=_gmacs("videomae_small"), **_VIDEOMAE_HF),
    PublishedWeights("videomae_base.k400_hf", "videomae_base", files=("videomae-base-finetuned-kinetics",),
                     source="huggingface.co/MCG-NJU/videomae-base-finetuned-kinetics", paper=_VIDEOMAE_ZOO.format("ViT-B"),
                     top1=81.5, top5=95.1, gmacs=_gmacs("videomae_base"), **_VIDEOMAE_HF),
    PublishedWeights("videomae_large.k400_hf", "videomae_large", files=("videomae-large-finetuned-kinetics",),
                     source="huggingface.co/MCG-NJU/videomae-large-finetuned-kinetics", paper=_VIDEOMAE_ZOO.format("ViT-L"),
                     top1=85.2, top5=96.8, gmacs=_gmacs("videomae_large"), **_VIDEOMAE_HF),
    PublishedWeights("videomae_huge.k400_hf", "videomae_huge", files=("videomae-huge-finetuned-kinetics",),
                     source="huggingface.co/MCG-NJU/videomae-huge-finetuned-kinetics", paper=_VIDEOMAE_ZOO.format("ViT-H"),
                     top1=86.6, top5=97.1, **_VIDEOMAE_HF),
)


# ---- hf_vivit (formats/hf_vivit.py)
# google/vivit-b-16x2-kinetics400 holds scenic's ViViT-B/16x2 Kinetics-400 checkpoint, converted
# (transformers' convert_vivit_flax_to_pytorch.py downloads scenic-bucket/vivit/kinetics_400/
# vivit_base_16x2_unfactorized/checkpoint): evaluated as scenic evaluates it. Its model card has
# no accuracy; the number is scenic's. Its head is in the standard (alphabetical) Kinetics-400
# order: HF's example predicts index 116 on "eating spaghetti", torchvision's name for 116.
register_published(
    PublishedWeights(
        "vivit_m1_base.k400_hf", "vivit_m1_base", format="hf-vivit",
        files=("vivit-b-16x2-kinetics400",),
        source="Hugging Face google/vivit-b-16x2-kinetics400 (converted from scenic's ViViT-B/16x2 K400 checkpoint)",
        paper="scenic projects/vivit README model zoo (ViViT-B/16x2, K400, 79.9 top-1 at 4x3 views); "
              "configs/kinetics400/vivit_base_k400.py for frames, stride, sizes, zero-centering",
        overrides=dict(act_layer="gelu_tanh"), num_frames=32, sampling_rate=2, crop_size=224, resize_size=256,
        mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), views=(4, 3), top1=79.9),
)


# ---- slowfast_mvit (formats/slowfast_mvit.py)
# Published in SlowFast's MODEL_ZOO.md (Kinetics-400 table) and projects/mvitv2/README.md; test
# protocol from the configs and slowfast/datasets/kinetics.py: 1 spatial crop -> short side
# TRAIN_JITTER_SCALES[0] = 256, centre crop TEST_CROP_SIZE = 224; DATA.MEAN / STD 0.45 / 0.225.
# The zoo's MViTv1 B-Conv 32x3 (model_zoo/mvit/k400.pyth, 80.4 / 94.8) is not listed: its config
# (Kinetics/MVIT_B_32x3_CONV) is 24 blocks with stride-derived K/V kernels, which vidbench's MViT
# does not build (the checkpoint is refused by name).
# the SlowFast family's Kinetics test protocol (SlowFast, pytorchvideo, torchvision's ports of them):
# short side 256, centre crop 224, 5 clips x 1 crop, DATA.MEAN / STD 0.45 / 0.225
_SLOWFAST_TEST = dict(crop_size=224, resize_size=256, mean=(0.45, 0.45, 0.45), std=(0.225, 0.225, 0.225), views=(5, 1))
_SF = dict(format="slowfast-mvit", **_SLOWFAST_TEST)
register_published(
    PublishedWeights("mvit_b_16x4.k400_slowfast", "mvit_b_16x4", files=("K400_MVIT_B_16x4_CONV.pyth",),
                     source="SlowFast MODEL_ZOO.md: MViTv1 B-Conv 16x4, config Kinetics/MVIT_B_16x4_CONV "
                            "(Google Drive file 194gJinVejq6A1FmySNKQ8vAN5-FOY-QL)",
                     paper="SlowFast MODEL_ZOO.md (K400, 1 x 5 views; FLOPs not listed there)",
                     num_frames=16, sampling_rate=4, top1=78.4, top5=93.5, gmacs=None, **_SF),
    PublishedWeights("mvitv2_s_16x4.k400_slowfast", "mvitv2_s_16x4",
                     files=("MViTv2_S_16x4_k400_f302660347.pyth",),
                     source="SlowFast projects/mvitv2/README.md and MODEL_ZOO.md: MViTv2-S 16x4, config "
                            "Kinetics/MVITv2_S_16x4 (dl.fbaipublicfiles.com/pyslowfast/model_zoo/mvitv2/"
                            "pysf_video_models/MViTv2_S_16x4_k400_f302660347.pyth)",
                     paper="MViTv2 (CVPR 2022); SlowFast projects/mvitv2 README: 64 GFLOPs x 1 x 5, 34.5M",
                     num_frames=16, sampling_rate=4, top1=81.0, top5=94.6, gmacs=_MVITV2_S_PAPER_GMACS, **_SF),
    PublishedWeights("mvitv2_b_32x3.k400_slowfast", "mvitv2_b_32x3", files=("MViTv2_B_32x3_k400_f304025456.pyth",),
                     source="SlowFast projects/mvitv2/README.md: MViTv2-B 32x3, config Kinetics/MVITv2_B_32x3 "
                            "(dl.fbaipublicfiles.com/pyslowfast/model_zoo/mvitv2/pysf_video_models/"
                            "MViTv2_B_32x3_k400_f304025456.pyth)",
                     paper="MViTv2 (CVPR 2022); SlowFast projects/mvitv2 README: 225 GFLOPs x 1 x 5, 51.2M",
                     num_frames=32, sampling_rate=3, top1=82.9, top5=95.7, gmacs=_gmacs("mvitv2_b_32x3"), **_SF),
    # MViTv2-L's test config (Kinetics/MVITv2_L_40x3_test): 312 px, 5 clips x 3 crops, so kinetics.py
    # resizes the short side to TEST_CROP_SIZE (312), and DATA.MEAN / STD are ImageNet's
    PublishedWeights("mvitv2_l_40x3.k400_slowfast", "mvitv2_l_40x3", files=("MViTv2_L_40x3_k400_f306903192.pyth",),
                     source="SlowFast projects/mvitv2/README.md: MViTv2-L 40x3, config Kinetics/MVITv2_L_40x3_test "
                            "(dl.fbaipublicfiles.com/pyslowfast/model_zoo/mvitv2/pysf_video_models/"
                            "MViTv2_L_40x3_k400_f306903192.pyth)",
                     paper="MViTv2 (CVPR 2022); SlowFast projects/mvitv2 README: 2828 GFLOPs x 3 x 5, 217.6M",
                     format="slowfast-mvit", num_frames=40, sampling_rate=3, crop_size=312, resize_size=312,
                     mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), views=(5, 3), top1=86.1, top5=97.0,
                     gmacs=_gmacs("mvitv2_l_40x3")),
)


# ---- torchvision_swin3d (formats/torchvision_swin3d.py)
# torchvision: `_docs` "frame_rate=15, clips_per_video=12, clip_len=32" (Kinetics at 30 fps: every
# 2nd frame), the weights' transforms: resize 256, centre crop 224, ImageNet mean / std
_TV_SWIN = dict(format="torchvision-swin3d", num_frames=32, sampling_rate=2, crop_size=224, resize_size=256,
           mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), views=(12, 1))
_TV_SWIN_PAPER = "torchvision meta (acc); GMACs at 32x224: Video Swin README ({} at 16x224 without LayerNorm in torchvision)"
# official configs: SampleFrames clip_len 32, frame_interval 2, num_clips 4; Resize short side 224,
# ThreeCrop 224; mean 123.675/116.28/103.53, std 58.395/57.12/57.375 on 0-255 pixels
_SWIN_OFFICIAL = dict(format="videoswin-official", num_frames=32, sampling_rate=2, crop_size=224, resize_size=224,
                 mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), views=(4, 3))
_SWIN_GITHUB = "github.com/SwinTransformer/storage/releases/download/v1.0.4/"
_SWIN_PAPER = "Video-Swin-Transformer README (Kinetics-400/600 tables); Video Swin (CVPR 2022) Tables 1-2"


def _tv_swin(model: str, file: str, weights: str, tv_gmacs: float, top1: float, top5: float,
             tag: str = "k400") -> PublishedWeights:
    """torchvision's port of an official Video Swin checkpoint (`weights`: its enum member)."""
    return PublishedWeights(f"{model}.{tag}_torchvision", model, files=(file,),
                            source=f"torchvision {weights} (ported from the official release)",
                            paper=_TV_SWIN_PAPER.format(tv_gmacs), top1=top1, top5=top5, gmacs=_gmacs(model),
                            **_TV_SWIN)


register_published(
    _tv_swin("swin3d_t", "swin3d_t-7615ae03.pth", "Swin3D_T_Weights.KINETICS400_V1", 43.882, 77.715, 93.519),
    _tv_swin("swin3d_s", "swin3d_s-da41c237.pth", "Swin3D_S_Weights.KINETICS400_V1", 82.841, 79.521, 94.158),
    _tv_swin("swin3d_b", "swin3d_b_1k-24f7c7c6.pth", "Swin3D_B_Weights.KINETICS400_V1", 140.667, 79.427, 94.386),
    _tv_swin("swin3d_b", "swin3d_b_22k-7c6ae6fa.pth", "Swin3D_B_Weights.KINETICS400_IMAGENET22K_V1", 140.667, 81.643,
             95.574, tag="k400_in22k"),
    PublishedWeights("swin3d_t.k400_official", "swin3d_t", files=("swin_tiny_patch244_window877_kinetics400_1k.pth",),
                     source=_SWIN_GITHUB + "swin_tiny_patch244_window877_kinetics400_1k.pth (ImageNet-1K init)",
                     paper=_SWIN_PAPER, top1=78.8, top5=93.6, gmacs=_gmacs("swin3d_t"), **_SWIN_OFFICIAL),
    PublishedWeights("swin3d_s.k400_official", "swin3d_s", files=("swin_small_patch244_window877_kinetics400_1k.pth",),
                     source=_SWIN_GITHUB + "swin_small_patch244_window877_kinetics400_1k.pth (ImageNet-1K init)",
                     paper=_SWIN_PAPER, top1=80.6, top5=94.5, gmacs=_gmacs("swin3d_s"), **_SWIN_OFFICIAL),
    PublishedWeights("swin3d_b.k400_official", "swin3d_b", files=("swin_base_patch244_window877_kinetics400_1k.pth",),
                     source=_SWIN_GITHUB + "swin_base_patch244_window877_kinetics400_1k.pth (ImageNet-1K init)",
                     paper=_SWIN_PAPER, top1=80.6, top5=94.6, gmacs=_gmacs("swin3d_b"), **_SWIN_OFFICIAL),
    PublishedWeights("swin3d_b.k400_in22k_official", "swin3d_b",
                     files=("swin_base_patch244_window877_kinetics400_22k.pth",),
                     source=_SWIN_GITHUB + "swin_base_patch244_window877_kinetics400_22k.pth (ImageNet-22K init)",
                     paper=_SWIN_PAPER, top1=82.7, top5=95.5, gmacs=_gmacs("swin3d_b"), **_SWIN_OFFICIAL),
    PublishedWeights("swin3d_b.k600_in22k_official", "swin3d_b",
                     files=("swin_base_patch244_window877_kinetics600_22k.pth",),
                     source=_SWIN_GITHUB + "swin_base_patch244_window877_kinetics600_22k.pth (ImageNet-22K init)",
                     paper=_SWIN_PAPER, overrides={"num_classes": 600}, top1=84.0, top5=96.5, gmacs=_gmacs("swin3d_b"),
                     dataset="Kinetics-600 val", classes="kinetics600", **_SWIN_OFFICIAL),
)


# ---- mmaction2 (formats/mmaction2.py)
# mmaction2 model zoo (configs/recognition/*/README.md, 1.x, Kinetics-400 val of 19,796 videos),
# test protocol of each config's test_pipeline (SampleFrames clip_len x frame_interval, num_clips;
# Resize short side; ThreeCrop / CenterCrop) and data_preprocessor mean / std (0-255 values / 255).
# FLOPs are the READMEs' per view (mmaction2's counter: multiply-adds, G).
_MM_ZOO = "https://download.openmmlab.com/mmaction/v1.0/recognition/"
_MM_README = "mmaction2 configs/recognition/{}/README.md (Kinetics-400)"
_MM_TS = dict(format="mmaction2", num_frames=8, sampling_rate=32, crop_size=224, resize_size=224,
           mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), views=(1, 3))
_MM_SW = dict(format="mmaction2", num_frames=32, sampling_rate=2, crop_size=224, resize_size=224,
           mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), views=(4, 3))
_MM_MV = dict(format="mmaction2", crop_size=224, resize_size=224, mean=(0.45, 0.45, 0.45), std=(0.225, 0.225, 0.225),
           views=(5, 1))
_MM_VM = dict(format="mmaction2", num_frames=16, sampling_rate=4, crop_size=224, resize_size=224,
           mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), views=(5, 3))


def _mm_timesformer_file(kind: str, stamp: str) -> str:
    return f"timesformer_{kind}_8xb8-8x32x1-15e_kinetics400-rgb_{stamp}.pth"


def _mm_swin_file(size: str, stamp: str) -> str:
    return f"swin-{size}-p244-w877_in1k-pre_8xb8-amp-32x2x1-30e_kinetics400-rgb_{stamp}.pth"


def _mm_url(family: str, file: str, folder: Optional[str] = None) -> str:
    folder = folder if folder is not None else file.rsplit("_", 1)[0] + "/"
    return f"{_MM_ZOO}{family}/{folder}{file}"


_MM_MV_PAPER = ("mmaction2 configs/recognition/mvit/README.md (Kinetics-400 inference results: ported from SlowFast, "
             "tested by mmaction2; metafile.yml repeats 81.1 for B and L, the README's table is used)")
register_published(
    *(PublishedWeights(f"timesformer_base.k400_{tag}_mmaction2", "timesformer_base", files=(_mm_timesformer_file(kind, stamp),),
                       source=_mm_url("timesformer", _mm_timesformer_file(kind, stamp)), paper=_MM_README.format("timesformer"),
                       overrides={} if att == "divided" else {"attention_type": att},
                       top1=top1, top5=top5, gmacs=gmacs, **_MM_TS)
      for tag, kind, att, stamp, top1, top5, gmacs in (
          ("divst", "divST", "divided", "20220815-a4d0d01f", 77.69, 93.45, 196.0),
          ("jointst", "jointST", "joint", "20220815-8022d1c0", 76.95, 93.28, 180.0),
          ("spaceonly", "spaceOnly", "space_only", "20220815-78f05367", 76.93, 92.88, 141.0))),
    *(PublishedWeights(f"swin3d_{size[0]}.k400_mmaction2", f"swin3d_{size[0]}", files=(_mm_swin_file(size, stamp),),
                       source=_mm_url("swin", _mm_swin_file(size, stamp)), paper=_MM_README.format("swin") + ", ImageNet-1k init",
                       top1=top1, top5=top5, gmacs=gmacs, **_MM_SW)
      for size, stamp, top1, top5, gmacs in (
          ("tiny", "20220930-241016b2", 78.90, 93.77, 88.0), ("small", "20220930-e91ab986", 80.54, 94.46, 166.0),
          ("base", "20220930-182ec6cc", 80.57, 94.49, 282.0))),
    PublishedWeights("mvitv2_s_16x4.k400_mmaction2", "mvitv2_s_16x4",
                     files=("mvit-small-p244_16x4x1_kinetics400-rgb_20221021-9ebaaeed.pth",),
                     source=_mm_url("mvit", "mvit-small-p244_16x4x1_kinetics400-rgb_20221021-9ebaaeed.pth", "converted/"),
                     paper=_MM_MV_PAPER, num_frames=16, sampling_rate=4, top1=81.1, top5=94.7, gmacs=_MVITV2_S_PAPER_GMACS, **_MM_MV),
    PublishedWeights("mvitv2_s_16x4.k400_mmaction2_trained", "mvitv2_s_16x4",
                     files=("mvit-small-p244_32xb16-16x4x1-200e_kinetics400-rgb_20230201-23284ff3.pth",),
                     source=_mm_url("mvit", "mvit-small-p244_32xb16-16x4x1-200e_kinetics400-rgb_20230201-23284ff3.pth"),
                     paper="mmaction2 configs/recognition/mvit/README.md (Kinetics-400 training results, trained "
                           "in mmaction2 with repeat augment)",
                     num_frames=16, sampling_rate=4, top1=80.6, top5=94.7, gmacs=_MVITV2_S_PAPER_GMACS, **_MM_MV),
    PublishedWeights("mvitv2_b_32x3.k400_mmaction2", "mvitv2_b_32x3",
                     files=("mvit-base-p244_32x3x1_kinetics400-rgb_20221021-f392cd2d.pth",),
                     source=_mm_url("mvit", "mvit-base-p244_32x3x1_kinetics400-rgb_20221021-f392cd2d.pth", "converted/"),
                     paper=_MM_MV_PAPER, num_frames=32, sampling_rate=3, top1=82.6, top5=95.8,
                     gmacs=_gmacs("mvitv2_b_32x3"), **_MM_MV),
    # config mvit-large-p244_40x3x1_kinetics400-rgb.py: Resize (-1, 312), ThreeCrop 312, 5 clips, mean / std 114.75 / 57.375
    PublishedWeights("mvitv2_l_40x3.k400_mmaction2", "mvitv2_l_40x3",
                     files=("mvit-large-p244_40x3x1_kinetics400-rgb_20221021-11fe1f97.pth",),
                     source=_mm_url("mvit", "mvit-large-p244_40x3x1_kinetics400-rgb_20221021-11fe1f97.pth", "converted/"),
                     paper=_MM_MV_PAPER, num_frames=40, sampling_rate=3, top1=85.4, top5=96.2,
                     gmacs=_gmacs("mvitv2_l_40x3"), **{**_MM_MV, "crop_size": 312, "resize_size": 312, "views": (5, 3)}),
    PublishedWeights("videomae_base.k400_mmaction2", "videomae_base",
                     files=("vit-base-p16_videomae-k400-pre_16x4x1_kinetics-400_20221013-860a3cd3.pth",),
                     source=_mm_url("videomae", "vit-base-p16_videomae-k400-pre_16x4x1_kinetics-400_20221013-860a3cd3.pth",
                                 "") + " (ported from MCG-NJU/VideoMAE)",
                     paper=_MM_README.format("videomae"), top1=81.3, top5=95.0, gmacs=_gmacs("videomae_base"), **_MM_VM),
    PublishedWeights("videomae_large.k400_mmaction2", "videomae_large",
                     files=("vit-large-p16_videomae-k400-pre_16x4x1_kinetics-400_20221013-229dbb03.pth",),
                     source=_mm_url("videomae", "vit-large-p16_videomae-k400-pre_16x4x1_kinetics-400_20221013-229dbb03.pth",
                                 "") + " (ported from MCG-NJU/VideoMAE)",
                     paper=_MM_README.format("videomae"), top1=85.3, top5=96.7, gmacs=_gmacs("videomae_large"), **_MM_VM),
    *(PublishedWeights(f"videomae_{size}.k400_v2_dist_mmaction2", f"videomae_{size}",
                       files=(f"vit-{size}-p16_videomaev2-vit-g-dist-k710-pre_16x4x1_kinetics-400_{stamp}.pth",),
                       source=_mm_url("videomaev2", f"vit-{size}-p16_videomaev2-vit-g-dist-k710-pre_16x4x1_kinetics-400_"
                                                 f"{stamp}.pth") + " (VideoMAE V2, distilled from ViT-g, K710 "
                                                                   "pre-training; ported from OpenGVLab/VideoMAEv2)",
                       paper="mmaction2 configs/recognition/videomaev2/README.md (Kinetics-400)",
                       top1=top1, top5=top5, gmacs=_gmacs(f"videomae_{size}"), **_MM_VM)
      for size, stamp, top1, top5 in (("small", "20230510-25c748fd", 83.6, 96.3),
                                      ("base", "20230510-3e7f93b2", 86.6, 97.3))),
)


# ---- pytorchvideo_mvit (formats/pytorchvideo_mvit.py)
# pytorchvideo docs/source/model_zoo.md, Kinetics-400 table ("Flops (G) x views": 1 crop x 5 clips).
# The zoo does not state the test resize; these files were trained with SlowFast's PTVMViT config
# (configs/Kinetics/pytorchvideo/MVIT_B_16x4_CONV), whose 1-crop test resizes the short side to
# 256 and centre-crops 224. Hub builders: pytorchvideo/models/hub/vision_transformers.py.
_PTV = dict(format="pytorchvideo-mvit", **_SLOWFAST_TEST)
register_published(
    PublishedWeights("mvit_b_16x4.k400_pytorchvideo", "mvit_b_16x4", files=("MVIT_B_16x4.pyth",),
                     source="pytorchvideo model zoo: MViT-B 16x4 (hub mvit_base_16x4, "
                            "dl.fbaipublicfiles.com/pytorchvideo/model_zoo/kinetics/MVIT_B_16x4.pyth)",
                     paper="pytorchvideo docs/source/model_zoo.md (70.80 GFLOPs x 1 x 5, 36.61M)",
                     num_frames=16, sampling_rate=4, top1=78.85, top5=93.85, gmacs=70.80, **_PTV),
    PublishedWeights("mvit_b_32x3.k400_pytorchvideo", "mvit_b_32x3", files=("MVIT_B_32x3_f294077834.pyth",),
                     source="pytorchvideo model zoo: MViT-B 32x3 (hub mvit_base_32x3, "
                            "dl.fbaipublicfiles.com/pytorchvideo/model_zoo/kinetics/MVIT_B_32x3_f294077834.pyth)",
                     paper="pytorchvideo docs/source/model_zoo.md (170.37 GFLOPs x 1 x 5, 36.61M)",
                     num_frames=32, sampling_rate=3, top1=80.30, top5=94.69, gmacs=_gmacs("mvit_b_32x3"), **_PTV),
)


# ---- scenic_vivit (formats/scenic_vivit.py)
# scenic projects/vivit README model zoo: "All the models below take in 32 frames as input",
# views x temporal * y spatial; each config: num_frames 32, stride 2, min_resize 256, crop 224,
# zero_centering, num_test_clips 4, do_three_spatial_crops. The zoo publishes every file as
# `checkpoint`: save it under the name in `files` so it is recognised.
_SCENIC_README = "scenic projects/vivit README model zoo"
_SCENIC = dict(format="scenic-vivit", num_frames=32, sampling_rate=2, crop_size=224, resize_size=256,
               mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), views=(4, 3))
_SCENIC_BUCKET = "https://storage.googleapis.com/scenic-bucket/vivit/"


def _scenic(model: str, run: str, kinetics: int, what: str, config: str, top1: float) -> PublishedWeights:
    """A scenic ViViT checkpoint: the bucket folder `kinetics_<kinetics>/<run>/checkpoint`, saved
    as `<run>_k<kinetics>` (or with `.msgpack`)."""
    k600 = dict(dataset="Kinetics-600 val", classes="kinetics600") if kinetics == 600 else {}
    return PublishedWeights(
        f"{model}.k{kinetics}_scenic", model, files=(f"{run}_k{kinetics}", f"{run}_k{kinetics}.msgpack"),
        source=f"{_SCENIC_BUCKET}kinetics_{kinetics}/{run}/checkpoint",
        paper=f"{_SCENIC_README} ({what}); configs/kinetics{kinetics}/{config}.py",
        overrides=dict(act_layer="gelu_tanh", **({"num_classes": 600} if kinetics == 600 else {})), top1=top1,
        **k600, **_SCENIC)


register_published(
    _scenic("vivit_m1_base", "vivit_base_16x2_unfactorized", 400, "ViViT-B/16x2", "vivit_base_k400", 79.9),
    _scenic("vivit_m2_base", "vivit_base_16x2_fe", 400, "ViViT-B/16x2 FE", "vivit_base_factorised_encoder", 78.4),
    _scenic("vivit_m2_large", "vivit_large_16x2_fe", 400, "ViViT-L/16x2 FE", "vivit_large_factorised_encoder",
            80.3),
    _scenic("vivit_m2_large", "vivit_large_16x2_fe", 600, "ViViT-L/16x2 FE, Kinetics 600",
            "vivit_large_factorised_encoder", 81.6),
)


# ---- torchvision_mvit (formats/torchvision_mvit.py)
_TV_MVIT = dict(format="torchvision-mvit", num_frames=16, sampling_rate=4, **_SLOWFAST_TEST)
register_published(
    PublishedWeights("mvit_b_16x4.k400_torchvision", "mvit_b_16x4", files=("mvit_v1_b-dbeb1030.pth",),
                     source="torchvision MViT_V1_B_Weights.KINETICS400_V1 (ported from pytorchvideo)",
                     paper="torchvision meta; MViT (ICCV 2021) Table 4", top1=78.477, top5=93.582, gmacs=70.599, **_TV_MVIT),
    PublishedWeights("mvitv2_s_16x4.k400_torchvision", "mvitv2_s_16x4", files=("mvit_v2_s-ae3be167.pth",),
                     source="torchvision MViT_V2_S_Weights.KINETICS400_V1 (ported from SlowFast)",
                     paper="torchvision meta; MViTv2 (CVPR 2022)", top1=80.757, top5=94.665, gmacs=_gmacs("mvitv2_s_16x4"), **_TV_MVIT),
)


# ---- hiera (formats/hiera_official.py)
# facebookresearch/hiera README, Video Models: K400 top-1 with 3x5 views (the paper: 3 spatial x 5
# temporal), "16 224x224 frames with a temporal stride of 4"; files dl.fbaipublicfiles.com/hiera/<file>,
# or the Hub directory facebook/<model>.mae_k400_ft_k400 (config.json + model.safetensors).
# Neither the README nor the package states a video normalisation or test resize: mean / std / resize
# are vidbench's Kinetics defaults (0.45 / 0.225, short side 256), not confirmed from a Hiera source.
# The per-view GFLOPs of the paper's video table could not be read here: gmacs stays None.
_HIERA = dict(format="hiera-official", num_frames=16, sampling_rate=4, crop_size=224, views=(5, 3),
              paper="facebookresearch/hiera README, Video Models table (K400, 3x5 views)")


def _hiera(model: str, top1: float) -> PublishedWeights:
    return PublishedWeights(f"{model}.mae_k400_ft_k400", model, files=(f"{model}.pth", f"{model}.mae_k400_ft_k400"),
                            source=f"hiera-transformer {model}(pretrained=True, checkpoint='mae_k400_ft_k400'): "
                                   f"https://dl.fbaipublicfiles.com/hiera/{model}.pth", top1=top1,
                            gmacs=_gmacs(model), **_HIERA)


register_published(
    _hiera("hiera_base_16x224", 84.0),
    _hiera("hiera_base_plus_16x224", 85.0),
    _hiera("hiera_large_16x224", 87.3),
    _hiera("hiera_huge_16x224", 87.8),
)


# ---- videomaev2 (formats/videomaev2_official.py)
# OpenGVLab/VideoMAEv2 docs/MODEL_ZOO.md, Distillation: the distilled ViT-S/16 and ViT-B/16 (the
# videomae_small / videomae_base architectures), Kinetics-710 heads; their K400 top-1 (83.7 / 86.6)
# is read through the 710 -> 400 label map (misc/label_710to400.json), so the K710 figure is listed.
# Test protocol from scripts/finetune/vit_*_k710_ft.sh: 16 frames, sampling rate 4, short side 224,
# crop 224, 5 clips x 3 crops; ImageNet mean / std (dataset/datasets.py). No top-5 in the table.
# The ViT-g fine-tuned weights (K400 87.2, K710 83.8) are behind a request form that names no
# files: not listed.
_VMAE2 = dict(format="videomaev2-official", overrides={"num_classes": 710}, num_frames=16, sampling_rate=4,
              crop_size=224, resize_size=224, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), views=(5, 3),
              dataset="Kinetics-710 val", classes="kinetics710")
register_published(
    *(PublishedWeights(f"videomae_{size}.k710_v2_dist_official", f"videomae_{size}", files=(f"vit_{s}_k710_dl_from_giant.pth",),
                       source=f"huggingface.co/OpenGVLab/VideoMAE2/resolve/main/distill/vit_{s}_k710_dl_from_giant.pth "
                              "(VideoMAE V2 MODEL_ZOO.md, Distillation; teacher vit_g_hybrid_pt_1200e_k710_ft)",
                       paper=f"VideoMAE V2 (CVPR 2023) MODEL_ZOO.md: K710 top-1 {top1} (K400 {k400} with the 710 -> 400 "
                             "label map), 16x5x3", top1=top1, gmacs=_gmacs(f"videomae_{size}"), **_VMAE2)
      for size, s, top1, k400 in (("small", "s", 77.6, 83.7), ("base", "b", 81.5, 86.6))),
)


# ---- videoprism (formats/hf_videoprism.py)
# google-deepmind/videoprism README 'Released models': the video encoders VideoPrism-B (16 frames)
# and -L (8 frames) at 288 x 288, and the video-text (LvT) models, on the Hugging Face Hub. Every one
# is an encoder without a classifier: loaded with num_classes=0 (pool "mean"; the LvT directories:
# their vision encoder only). Inputs: the whole frame resized to 288 x 288 (HF's VideoPrismProcessor
# size 288 x 288, no crop; vidbench's nearest protocol: resize = crop), RGB in [0, 1] (README: "The
# RGB values of input videos should be normalized in [0.0, 1.0]"; the processor's do_normalize
# False): mean 0, std 1. Frames: HF's processor samples num_frames uniformly over the video, which
# no stride expresses; sampling_rate 1 is vidbench's default, not a published figure. top-1: none:
# the README's Kinetics-400 figures (VideoGLUE, B 82.9, L 85.0) are for a probe trained on the frozen
# encoder, not for these files. Multiply-adds: not published.
_VIDEOPRISM = dict(format="hf-videoprism", crop_size=288, resize_size=288, mean=(0.0, 0.0, 0.0),
                   std=(1.0, 1.0, 1.0), views=(1, 1), overrides={"num_classes": 0}, dataset="", classes="")
_VP_README = "google-deepmind/videoprism README 'Released models' ({}: {}, {}M params)"
register_published(
    *(PublishedWeights(f"{model}.{tag}_hf", model, files=(repo,), source=f"https://huggingface.co/google/{repo}",
                       paper=_VP_README.format(label, what, params), num_frames=frames, **_VIDEOPRISM)
      for model, tag, repo, label, what, params, frames in (
          ("videoprism_base", "public_v1", "videoprism-base-f16r288", "VideoPrism-B", "video encoder", 114, 16),
          ("videoprism_large", "public_v1", "videoprism-large-f8r288", "VideoPrism-L", "video encoder", 354, 8),
          ("videoprism_base", "lvt_public_v1", "videoprism-lvt-base-f16r288", "VideoPrism-LvT-B",
           "video-text encoders; vidbench loads the vision encoder", 248, 16),
          ("videoprism_large", "lvt_public_v1", "videoprism-lvt-large-f8r288", "VideoPrism-LvT-L",
           "video-text encoders; vidbench loads the vision encoder", 580, 8))),
)


# ---- hf_vjepa2 (formats/hf_vjepa2.py)
# V-JEPA 2 (Assran et al., 2025) on the Hugging Face Hub (collection facebook/v-jepa-2; the official
# README lists the same four encoders and links it). The encoders (`VJEPA2Model`: encoder +
# predictor) load as feature extractors with no classifier, so they have no test protocol or
# accuracy: their preprocessing is the HF video processor's (ImageNet mean / std, short side
# crop * 256 / 224, centre crop), their frames the clip length they were trained at ("fpc64");
# their pre-training sampled clips at 4 fps (configs/train/*/cooldown-*-64f.yaml), a time rate
# and not a frame stride, so sampling_rate is left at 1 here.
# The classifiers are the official attentive probes (README "Evaluation Attentive Probes":
# ssv2-vitl-16x2x3.pt, diving48-vitl-256.pt, ssv2-vitg-384-64x2x3.pt, diving48-vitg-384-32x4x3.pt)
# as the HF directories named by the same frames, resolution and dataset; their results and test
# protocol are the official README's and its configs/eval/<model>/<dataset>.yaml (frames_per_clip,
# frame_step, num_segments x num_views_per_segment); the official multi-view eval resizes the
# short side to the crop size and takes 3 crops along the long side (evals/video_classification_
# frozen/utils.py EvalVideoTransform). The HF model cards' own figures were not read here. No
# Kinetics-400 probe is released.
_VJEPA2_HF = dict(format="hf-vjepa2", mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
_VJEPA2_ENCODER = dict(num_frames=64, sampling_rate=1, views=(1, 1), dataset="none (self-supervised encoder, no "
                       "classifier)", classes="none", **_VJEPA2_HF)
_VJEPA2_README = "facebookresearch/vjepa2 README ({})"
_SSV2 = dict(dataset="Something-Something v2 val", classes="something-something-v2")
_DIVING48 = dict(dataset="Diving48 test", classes="diving48")


def _vjepa2_encoder(model: str, hub: str, crop: int, what: str) -> PublishedWeights:
    return PublishedWeights(f"{model}.fpc64_{crop}_hf", model, files=(hub,),
                            source=f"huggingface.co/facebook/{hub} (VJEPA2Model: encoder + predictor)",
                            paper=_VJEPA2_README.format(f"pretrained checkpoints: {what}"), crop_size=crop,
                            resize_size=int(crop * 256 / 224), **_VJEPA2_ENCODER)


def _vjepa2_probe(model: str, hub: str, crop: int, frames: int, step: int, views: tuple, official: str, config: str,
                  top1: float, data: dict, overrides: Optional[dict] = None) -> PublishedWeights:
    return PublishedWeights(f"{model}.{hub.split('-')[-1]}_hf", model, files=(hub,), overrides=overrides or {},
                            source=f"huggingface.co/facebook/{hub} (VJEPA2ForVideoClassification)",
                            paper=_VJEPA2_README.format(f"attentive probes: {official}; configs/eval/{config}"),
                            num_frames=frames, sampling_rate=step, crop_size=crop, resize_size=crop, views=views,
                            top1=top1, **data, **_VJEPA2_HF)


_VJEPA2_HF_ENTRIES = (
    _vjepa2_encoder("vjepa2_vitl", "vjepa2-vitl-fpc64-256", 256, "ViT-L/16, 300M, 256"),
    _vjepa2_encoder("vjepa2_vith", "vjepa2-vith-fpc64-256", 256, "ViT-H/16, 600M, 256"),
    _vjepa2_encoder("vjepa2_vitg", "vjepa2-vitg-fpc64-256", 256, "ViT-g/16, 1B, 256"),
    _vjepa2_encoder("vjepa2_vitg_384", "vjepa2-vitg-fpc64-384", 384, "ViT-g/16 384, 1B, 384"),
    _vjepa2_probe("vjepa2_vitl_probe", "vjepa2-vitl-fpc16-256-ssv2", 256, 16, 4, (2, 3), "ssv2-vitl-16x2x3.pt",
                  "vitl/ssv2.yaml", 73.7, _SSV2),
    _vjepa2_probe("vjepa2_vitl_probe", "vjepa2-vitl-fpc32-256-diving48", 256, 32, 2, (4, 3), "diving48-vitl-256.pt",
                  "vitl/diving48.yaml", 89.0, _DIVING48, dict(num_frames=32, num_classes=48)),
    _vjepa2_probe("vjepa2_vitg_384_probe", "vjepa2-vitg-fpc64-384-ssv2", 384, 64, 2, (2, 3),
                  "ssv2-vitg-384-64x2x3.pt", "vitg-384/ssv2.yaml", 77.3, _SSV2),
    _vjepa2_probe("vjepa2_vitg_384_probe", "vjepa2-vitg-fpc32-384-diving48", 384, 32, 2, (4, 3),
                  "diving48-vitg-384-32x4x3.pt", "vitg-384/diving48.yaml", 90.2, _DIVING48,
                  dict(num_frames=32, num_classes=48)),
)
register_published(*_VJEPA2_HF_ENTRIES)


# ---- self-supervised image backbones (formats/timm_vit.py, dino_official.py, mae_official.py,
# mocov3_official.py, dinov2_official.py)
# No head (num_classes=0: the pooled features). top1 is the official README's ImageNet-1k linear-probe
# top-1; the k-NN figure, where the README gives one, is in `paper`. Every evaluation script resizes
# the short side to 256 and centre-crops 224 with ImageNet's mean / std (dino eval_linear.py /
# eval_knn.py; mae main_linprobe.py; moco-v3 main_lincls.py; dinov2 data/transforms.py
# make_classification_eval_transform). DINOv2's files hold 518 px positions (37 x 37), resized to the
# crop on load as its hub model interpolates them.
_SSL = dict(num_frames=1, sampling_rate=1, crop_size=224, resize_size=256, mean=(0.485, 0.456, 0.406),
            std=(0.229, 0.224, 0.225), views=(1, 1), dataset="ImageNet-1k val", classes="imagenet1k")


def _ssl(name: str, model: str, fmt: str, files: tuple, url: str, readme: str, linear: Optional[float],
         knn: Optional[float], overrides: Optional[dict] = None) -> PublishedWeights:
    paper = f"{readme}: linear probe {linear}%" + (f", k-NN {knn}%" if knn is not None else ", no k-NN figure")
    return PublishedWeights(name, model, fmt, files, source=url, paper=paper, top1=linear,
                            overrides={"num_classes": 0, **(overrides or {})}, **_SSL)


_DINO = "https://dl.fbaipublicfiles.com/dino/{0}/{0}.pth"
_DINO_README = "facebookresearch/dino README, pretrained models table ({})"
_MAE = "https://dl.fbaipublicfiles.com/mae/pretrain/{}.pth"
_MAE_README = ("facebookresearch/mae FINETUNE.md, linear probing table, {}: paper (TF/TPU, the released "
               "checkpoints) {}; this repo's PT/GPU code {}")
_MOCOV3 = "https://dl.fbaipublicfiles.com/moco-v3/{0}/{0}.pth.tar"
_MOCOV3_README = "facebookresearch/moco-v3 README, ViT linear classification table ({}, 300 epochs)"
_DINOV2 = "https://dl.fbaipublicfiles.com/dinov2/{0}/{1}_pretrain.pth"
_DINOV2_README = "facebookresearch/dinov2 README, pretrained models table ({})"

register_published(
    _ssl("vit_small.dino_official", "vit_small", "timm-vit", ("dino_deitsmall16_pretrain.pth",),
         _DINO.format("dino_deitsmall16_pretrain"), _DINO_README.format("ViT-S/16, backbone only"), 77.0, 74.5),
    _ssl("vit_small.dino_full_official", "vit_small", "dino-official",
         ("dino_deitsmall16_pretrain_full_checkpoint.pth",),
         _DINO.format("dino_deitsmall16_pretrain").replace("pretrain.pth", "pretrain_full_checkpoint.pth"),
         _DINO_README.format("ViT-S/16, full ckpt: the teacher's backbone"), 77.0, 74.5),
    _ssl("vit_base.dino_official", "vit_base", "timm-vit", ("dino_vitbase16_pretrain.pth",),
         _DINO.format("dino_vitbase16_pretrain"), _DINO_README.format("ViT-B/16, backbone only"), 78.2, 76.1),
    _ssl("vit_base.dino_full_official", "vit_base", "dino-official", ("dino_vitbase16_pretrain_full_checkpoint.pth",),
         _DINO.format("dino_vitbase16_pretrain").replace("pretrain.pth", "pretrain_full_checkpoint.pth"),
         _DINO_README.format("ViT-B/16, full ckpt: the teacher's backbone"), 78.2, 76.1),
    _ssl("vit_base.mae_official", "vit_base", "timm-vit", ("mae_pretrain_vit_base.pth",),
         _MAE.format("mae_pretrain_vit_base"), _MAE_README.format("ViT-Base", 68.0, 67.8), 68.0, None),
    _ssl("vit_large.mae_official", "vit_large", "timm-vit", ("mae_pretrain_vit_large.pth",),
         _MAE.format("mae_pretrain_vit_large"), _MAE_README.format("ViT-Large", 75.8, 76.0), 75.8, None),
    _ssl("vit_small.mocov3_official", "vit_small", "mocov3-official", ("vit-s-300ep.pth.tar",),
         _MOCOV3.format("vit-s-300ep"), _MOCOV3_README.format("ViT-Small: 12 heads, vits.py"), 73.2, None,
         {"num_heads": 12}),
    _ssl("vit_base.mocov3_official", "vit_base", "mocov3-official", ("vit-b-300ep.pth.tar",),
         _MOCOV3.format("vit-b-300ep"), _MOCOV3_README.format("ViT-Base"), 76.7, None),
    _ssl("vit_small_dinov2.official", "vit_small_dinov2", "dinov2-official", ("dinov2_vits14_pretrain.pth",),
         _DINOV2.format("dinov2_vits14", "dinov2_vits14"), _DINOV2_README.format("ViT-S/14 distilled"), 81.1, 79.0,
         {"img_size": 518}),
    _ssl("vit_small_dinov2_reg4.official", "vit_small_dinov2_reg4", "dinov2-official",
         ("dinov2_vits14_reg4_pretrain.pth",), _DINOV2.format("dinov2_vits14", "dinov2_vits14_reg4"),
         _DINOV2_README.format("ViT-S/14 distilled, with registers"), 80.9, 79.1, {"img_size": 518}),
    _ssl("vit_base_dinov2.official", "vit_base_dinov2", "dinov2-official", ("dinov2_vitb14_pretrain.pth",),
         _DINOV2.format("dinov2_vitb14", "dinov2_vitb14"), _DINOV2_README.format("ViT-B/14 distilled"), 84.5, 82.1,
         {"img_size": 518}),
    _ssl("vit_base_dinov2_reg4.official", "vit_base_dinov2_reg4", "dinov2-official",
         ("dinov2_vitb14_reg4_pretrain.pth",), _DINOV2.format("dinov2_vitb14", "dinov2_vitb14_reg4"),
         _DINOV2_README.format("ViT-B/14 distilled, with registers"), 84.6, 82.0, {"img_size": 518}),
)


# ---- vjepa2_official (formats/vjepa2_official.py)
# The same V-JEPA 2 encoders and attentive probes as the official files the facebookresearch/vjepa2
# README links (https://dl.fbaipublicfiles.com/vjepa2/<file>); metadata and figures as the
# hf_vjepa2 entries above (the README's). An encoder file loads its `target_encoder`. A probe file
# holds no encoder: `combine_official(encoder, probe, out)` writes the loadable file; named like the
# probe file it keeps that entry's metadata. The official probe runs with 16 heads and LayerNorm
# eps 1e-5 (the eval's), not Hugging Face's pooler settings.
_VJEPA2_URL = "https://dl.fbaipublicfiles.com/vjepa2/{}"


def _vjepa2_official(hf: PublishedWeights, file: str) -> PublishedWeights:
    return dataclasses.replace(hf, name=hf.name.replace("_hf", "_official"), format="vjepa2-official", files=(file,),
                               source=_VJEPA2_URL.format(file) + (" (+ its encoder, combine_official)"
                                                                  if hf.top1 is not None else ""))


register_published(*(_vjepa2_official(entry, file) for entry, file in zip(_VJEPA2_HF_ENTRIES, (
    "vitl.pt", "vith.pt", "vitg.pt", "vitg-384.pt", "ssv2-vitl-16x2x3.pt", "diving48-vitl-256.pt",
    "ssv2-vitg-384-64x2x3.pt", "diving48-vitg-384-32x4x3.pt"), strict=True)))
